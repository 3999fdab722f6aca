//! Server reflection, v1 and v1alpha: clients discover and describe the
//! services without proto files.

use prost::Message;
use tonic_reflection::pb::{v1, v1alpha};

use crate::helpers::*;

const SERVICES: &[&str] = &[
    "clv.v1.IngestService",
    "clv.v1.ReportService",
    "grpc.health.v1.Health",
];

fn ingest_methods(files: &[Vec<u8>]) -> Vec<String> {
    let mut methods = Vec::new();
    for bytes in files {
        let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("descriptor");
        for service in file.service.iter().filter(|s| s.name() == "IngestService") {
            methods.extend(service.method.iter().map(|m| m.name().to_owned()));
        }
    }
    methods.sort();
    methods
}

/// The same conversation over each reflection version (their generated
/// types live in different modules).
macro_rules! lists_and_describes {
    ($test:ident, $version:ident) => {
        #[tokio::test]
        async fn $test() {
            use $version::{
                server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse, ServerReflectionRequest,
            };
            let app = spawn_app().await;
            let mut client = ServerReflectionClient::new(channel(&app.endpoint()).await.unwrap());
            let ask = |m| ServerReflectionRequest {
                host: String::new(),
                message_request: Some(m),
            };
            let requests = vec![
                ask(MessageRequest::ListServices(String::new())),
                ask(MessageRequest::FileContainingSymbol(
                    "clv.v1.IngestService".into(),
                )),
            ];
            let mut responses = client
                .server_reflection_info(futures::stream::iter(requests))
                .await
                .unwrap()
                .into_inner();
            let Some(MessageResponse::ListServicesResponse(list)) =
                responses.message().await.unwrap().unwrap().message_response
            else {
                panic!("expected a service list")
            };
            let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            for s in SERVICES {
                assert!(names.iter().any(|n| n == s), "{s} missing from {names:?}");
            }
            let Some(MessageResponse::FileDescriptorResponse(files)) =
                responses.message().await.unwrap().unwrap().message_response
            else {
                panic!("expected descriptors")
            };
            assert_eq!(
                ingest_methods(&files.file_descriptor_proto),
                [
                    "DeleteCustomer",
                    "ImportTransactions",
                    "RecordAcquisitionSpend",
                    "RecordFeedback",
                    "RecordTransaction"
                ]
            );
        }
    };
}

lists_and_describes!(v1_lists_and_describes_the_services, v1);
lists_and_describes!(v1alpha_lists_and_describes_the_services, v1alpha);

/// grpcurl 1.8.6 speaks only v1alpha: the reflection a deployed grpcurl
/// sees. Runs when grpcurl is on PATH; `.ci/run` installs it and sets
/// CLVD_REQUIRE_GRPCURL=1 so that CI cannot skip it.
#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_lists_describes_and_calls_without_proto_files() {
    let Some(grpcurl) = grpcurl() else {
        return;
    };
    let app = spawn_app().await;
    let addr = app.addr.to_string();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&grpcurl)
            .arg("-plaintext")
            .args(args)
            .output()
            .expect("run grpcurl");
        assert!(
            out.status.success(),
            "grpcurl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let list = tokio::task::block_in_place(|| run(&[&addr, "list"]));
    for s in SERVICES {
        assert!(list.contains(s), "{s} not in {list}");
    }
    let described =
        tokio::task::block_in_place(|| run(&[&addr, "describe", "clv.v1.IngestService"]));
    assert!(
        described.contains("rpc ImportTransactions ( stream .clv.v1.ImportTransactionsRequest )"),
        "{described}"
    );
    let body = r#"{"transaction":{"customer_id":"g1","transaction_id":"t1","occurred_at":"2026-01-05T10:00:00Z",
        "kind":"TRANSACTION_KIND_PURCHASE","amount":{"currency_code":"USD","units":"12","nanos":340000000}}}"#;
    tokio::task::block_in_place(|| {
        run(&["-d", body, &addr, "clv.v1.IngestService/RecordTransaction"])
    });
    assert_eq!(
        app.summary("g1").await.unwrap().net_revenue.nanos(),
        12_340_000_000
    );
}

/// The reflection protocol answers a request it cannot serve with an
/// in-stream ErrorResponse and keeps the stream open for the next request.
macro_rules! answers_errors_in_stream {
    ($test:ident, $version:ident) => {
        #[tokio::test]
        async fn $test() {
            use $version::{
                server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse, ServerReflectionRequest,
            };
            let app = spawn_app().await;
            let mut client = ServerReflectionClient::new(channel(&app.endpoint()).await.unwrap());
            let ask = |m| ServerReflectionRequest {
                host: String::new(),
                message_request: Some(m),
            };
            let requests = vec![
                ask(MessageRequest::FileContainingSymbol(
                    "clv.v1.NoSuchThing".into(),
                )),
                ask(MessageRequest::FileByFilename("no/such/file.proto".into())),
                ask(MessageRequest::FileContainingSymbol(
                    "clv.v1.IngestService".into(),
                )),
            ];
            let mut responses = client
                .server_reflection_info(futures::stream::iter(requests.clone()))
                .await
                .unwrap()
                .into_inner();
            for (i, unknown) in requests[..2].iter().enumerate() {
                let answer = responses
                    .message()
                    .await
                    .expect("the stream stays open after an unknown name")
                    .expect("an answer");
                let Some(MessageResponse::ErrorResponse(e)) = answer.message_response else {
                    panic!("request {i}: expected an ErrorResponse, got {answer:?}")
                };
                assert_eq!(e.error_code, tonic::Code::NotFound as i32, "{e:?}");
                assert!(!e.error_message.is_empty());
                assert_eq!(answer.original_request.as_ref(), Some(unknown));
            }
            let Some(MessageResponse::FileDescriptorResponse(files)) = responses
                .message()
                .await
                .expect("the stream still answers")
                .expect("an answer")
                .message_response
            else {
                panic!("expected descriptors")
            };
            assert!(ingest_methods(&files.file_descriptor_proto)
                .contains(&"ImportTransactions".to_owned()));
            assert!(
                responses.message().await.unwrap().is_none(),
                "the stream ends with ours"
            );
        }
    };
}

answers_errors_in_stream!(v1_answers_unknown_names_in_stream, v1);
answers_errors_in_stream!(v1alpha_answers_unknown_names_in_stream, v1alpha);
