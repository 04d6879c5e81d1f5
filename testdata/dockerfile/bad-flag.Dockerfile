FROM alpine
RUN echo one \
    two

COPY --chmode=755 a /b
