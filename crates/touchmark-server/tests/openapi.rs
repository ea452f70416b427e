//! The OpenAPI document at `/openapi.json`, checked by tools we did not write, against a real
//! server: `openapi-spec-validator` says the document is valid OpenAPI, and schemathesis, which
//! generates requests from it (valid ones and ones the document forbids), finds no 5xx and no
//! answer that breaks the document: every status, content type, header and body as declared,
//! every request the document allows accepted, every one it forbids refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use touchmark_client::api::CreateToken;
use touchmark_testkit::{Backend, TestServer, Unit, passing_test};

/// Examples schemathesis generates per operation: enough to reach every constraint of every
/// operation, short enough for CI (a minute or two per backend on two cores).
const EXAMPLES_PER_OPERATION: &str = "40";

fn tool(var: &str, program: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| program.to_owned())
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs `command`, and fails the test with everything it printed when it does not exit 0.
fn run(what: &str, command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what} could not be started: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

touchmark_testkit::both_backends!(
    #[cfg_attr(
        not(tm_openapi_tools),
        ignore = "needs openapi-spec-validator and schemathesis: `pip install openapi-spec-validator schemathesis`"
    )]
    the_document_is_valid_and_the_server_conforms_to_it
);

async fn the_document_is_valid_and_the_server_conforms_to_it(backend: Backend) {
    // Schemathesis keeps connections alive between requests and does not retry a POST on one
    // the server closed as idle at the moment it was reused (the race of every HTTP/1.1 server
    // with an idle timeout; it failed CI runs as "EOF occurred in violation of protocol" on a
    // loaded machine). This server keeps idle connections longer than the run; closing idle
    // connections is tested in `connections.rs`.
    let kit = TestServer::start_with(backend, &|o| {
        o.connections.header_timeout = std::time::Duration::from_secs(900);
        o.connections.idle_timeout = std::time::Duration::from_secs(900);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();

    // The document, as served, is valid OpenAPI.
    let doc = kit.anonymous().openapi().await.unwrap();
    let spec = write(dir.path(), "openapi.json", &doc.to_string());
    let validator = tool(
        "TOUCHMARK_TEST_OPENAPI_SPEC_VALIDATOR",
        "openapi-spec-validator",
    );
    let said = run(
        "openapi-spec-validator",
        Command::new(&validator).arg(&spec),
    );
    assert!(said.contains("OK"), "openapi-spec-validator: {said}");

    // Something to find: a line with a station, one issued unit, a checkpoint over it. The
    // station's identity and an admin token go with every request schemathesis sends, so it
    // reaches past authentication on every operation.
    let line = kit.line("api", 50, "SN-000001..SN-000050").await;
    let station = kit.enroll_station(&line.factory).await;
    let issued = station
        .provision(
            &line.order,
            &Unit::new("SN-000001"),
            passing_test("SN-000001"),
        )
        .await;
    assert_eq!(issued.status.as_u16(), 201, "{}", issued.text);
    kit.sequence_now().await;
    let admin = kit
        .admin
        .create_token(&CreateToken {
            role: "admin".into(),
            label: "conformance".into(),
        })
        .await
        .unwrap();
    let ca = write(dir.path(), "ca.pem", &kit.root_ca_pem);
    let cert = write(dir.path(), "station.pem", &station.cert_pem);
    let key = write(dir.path(), "station.key", &station.key_pem);

    let schemathesis = tool("TOUCHMARK_TEST_SCHEMATHESIS", "schemathesis");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml");
    let mut command = Command::new(&schemathesis);
    command
        .current_dir(dir.path())
        .args(["--config-file", config])
        .args(["run", &spec, "--url", &kit.base_url])
        .args(["--checks", "all"])
        .args(["--max-examples", EXAMPLES_PER_OPERATION])
        .args(["--seed", "1"])
        // One worker: hypothesis describes its strategies through a cache that two threads can
        // corrupt ("AST constructor recursion depth mismatch", an error inside the tool).
        .args(["--workers", "1"])
        // A refusal answered before the request's body was read (an extractor that refuses
        // the caller, a body over the limit) ends the HTTP/1.1 connection, and a client still
        // sending a large fuzzed body then sees it reset ("EOF occurred in violation of
        // protocol", on POSTs, under CI load). Such a request was not processed; it is sent
        // again on a new connection, as a browser would.
        .args(["--request-retries", "2"])
        .args(["--tls-verify", &ca])
        .args(["--request-cert", &cert, "--request-cert-key", &key])
        .args(["-H", &format!("Authorization: Bearer {}", admin.token)])
        .args(["--no-color"])
        // tests/schemathesis_hooks.py: how to send an OCSP request's bytes.
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/tests"))
        .env("NO_COLOR", "1");
    run("schemathesis", &mut command);
}
