# cloudcore's image, as deploy/cloudcore/deployment.yaml runs it:
#   docker build -t beehive-edge/cloudcore:dev .
# The config comes from the ConfigMap at /etc/cloudcore/cloudcore.yaml.
FROM python:3.11-slim
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY beehive beehive
COPY modules modules
RUN pip install --no-cache-dir . && rm -rf /src && useradd --uid 10001 --no-create-home cloudcore
WORKDIR /
USER 10001
EXPOSE 10000 10002 10012
ENTRYPOINT []
CMD ["beehive", "run", "/etc/cloudcore/cloudcore.yaml"]
