//! fsgate's own ESL client (`esl::connection`) against the simulator: the
//! daemon's view of a call must be the same as against the real switch.

mod sim_support;

use std::time::Duration;

use fsgate::esl::api::ApiCommand;
use fsgate::esl::command::{EventName, Password};
use fsgate::esl::connection::{connect, ConnectOptions, Delivery};
use fsgate::esl::event::EventFormat;
use sim_support::start_sim;

#[tokio::test]
async fn esl_client_drives_a_parked_inbound_call() {
    let sim = start_sim(|_| {}).await;
    let opts = ConnectOptions::new(Password::new("ClueCon").unwrap());
    let (client, mut events) = connect(&sim.esl_addr().to_string(), &opts)
        .await
        .expect("connects and authenticates");
    for format in [EventFormat::Plain, EventFormat::Json] {
        client
            .subscribe(format, &[EventName::all()])
            .await
            .expect("subscribed");
    }
    let status = client.api(&ApiCommand::status()).await.expect("status");
    assert!(String::from_utf8_lossy(&status).starts_with("UP 0 years"));
    let job = client.bgapi(&ApiCommand::status()).await.expect("bgapi");
    let done = job
        .result(Duration::from_secs(5))
        .await
        .expect("job result");
    assert!(done.body_text().unwrap().contains("is ready"));

    let uuid = sim.switch().place_inbound("+15557770001", "15550109000");
    let mut seen = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
        let Delivery::Event(e) = d else { continue };
        let name = e.name().unwrap_or_default().into_owned();
        if e.get("Unique-ID").as_deref() != Some(uuid.as_str()) {
            continue;
        }
        seen.push(name.clone());
        if name == "CHANNEL_PARK" {
            let u = uuid.parse().unwrap();
            let r = client.api(&ApiCommand::uuid_answer(u)).await.unwrap();
            assert_eq!(&r[..], b"+OK\n");
            let r = client
                .api(&ApiCommand::uuid_kill(
                    u,
                    fsgate::esl::HangupCause::CALL_REJECTED,
                ))
                .await
                .unwrap();
            assert_eq!(&r[..], b"+OK\n");
        }
        if name == "CHANNEL_DESTROY" {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "CHANNEL_CREATE",
            "CHANNEL_EXECUTE",
            "CHANNEL_PARK",
            "CHANNEL_ANSWER",
            "CHANNEL_HANGUP",
            "CHANNEL_UNPARK",
            "CHANNEL_EXECUTE_COMPLETE",
            "CHANNEL_HANGUP_COMPLETE",
            "CHANNEL_DESTROY"
        ]
    );
    client.close().await;
    sim.shutdown().await;
}
