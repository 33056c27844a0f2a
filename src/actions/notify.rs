//! `notify.send`: a notification to a configured channel. A failure to
//! deliver is recorded in the output, never failing (or blocking) the
//! order.

use crate::workflow::interpreter::ActionError;
use crate::workflow::value::Data;

use super::ArgType::*;
use super::{arg, Action, Call};

pub const SEND: Action = Action {
    name: "notify.send",
    doc: "Send a notification to a configured channel (Slack-compatible JSON).",
    args: &[
        arg("text", Str, true, "message text"),
        arg(
            "channel",
            Str,
            false,
            "configured channel name (default: default)",
        ),
        arg("data", Any, false, "structured payload"),
    ],
    outputs: &["delivered", "text"],
    errors: &[],
    external: true,
};

pub(super) async fn send(c: &Call<'_>) -> Result<Data, ActionError> {
    let f = c.fulfil()?;
    let mut ev = crate::notify::Event::new("workflow", c.arg("text").unwrap_or_default());
    ev.order_id = c.order.as_ref().map(|o| o.id.clone());
    ev.data = c
        .effect
        .args
        .get("data")
        .map_or(serde_json::Value::Null, Data::to_json);
    let text = Data::from(ev.text.clone());
    match f.notifier.send(c.arg("channel").as_deref(), &ev).await {
        Ok(d) => Ok(Data::map([
            ("delivered", Data::Bool(d.delivered)),
            ("attempts", Data::Int(i64::from(d.attempts))),
            ("text", text),
        ])),
        Err(x) => {
            tracing::warn!(error = %x, "Notification not sent");
            Ok(Data::map([
                ("delivered", Data::Bool(false)),
                ("error", Data::from(x.to_string())),
                ("text", text),
            ]))
        }
    }
}
