# syntax=docker/dockerfile:1
# labgate container image: a release build, then a small non-root runtime image.
#   docker build -t labgate .
#   docker run -v $PWD/labgate.toml:/etc/labgate/labgate.toml:ro -p 4180:4180 labgate

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY config config
COPY tests tests
RUN cargo build --release --locked --bin labgate

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/labgate /usr/local/bin/labgate
COPY config/labgate.example.toml /etc/labgate/labgate.example.toml
# Every setting can also come from LABGATE__SECTION__KEY environment variables.
ENV LABGATE_CONFIG=/etc/labgate/labgate.toml
USER nonroot:nonroot
EXPOSE 4180
ENTRYPOINT ["/usr/local/bin/labgate"]
CMD ["run"]
