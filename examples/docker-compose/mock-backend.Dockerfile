# The project's mock OpenAI-compatible backend, for the compose demo.
# Build context: the repository root.
FROM rust:1.95-slim AS build
WORKDIR /src
COPY . .
RUN cargo build --profile tools -p mock-backend

FROM debian:bookworm-slim
COPY --from=build /src/target/tools/mock-backend /usr/local/bin/mock-backend
EXPOSE 8080
ENTRYPOINT ["mock-backend"]
