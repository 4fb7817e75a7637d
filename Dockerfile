FROM python:3.11-slim

ARG EXTRAS=""

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY pyproject.toml README.md ./
COPY sweep/ sweep/
RUN pip install --no-cache-dir ".${EXTRAS}"

COPY studies/*.toml studies/

RUN useradd --create-home --uid 10001 sweep \
    && chown -R sweep:sweep /app
USER sweep

ENTRYPOINT ["sweep"]
CMD ["--help"]
