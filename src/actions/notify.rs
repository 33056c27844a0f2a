//! `notify.send`: a notification to a configured channel. A failure to
//! deliver is recorded in the output, never failing (or blocking) the
//! order. A channel the configuration does not define is an error
//! (`invalid`: the order stops for an operator, who defines it and
//! resumes, or skips the step): the validator refuses such a workflow, so
//! it happens only when the configuration changed under a running order,
//! or the name came from an expression. With no channel configured at all
//! notifications are off: the step sends nothing and its audit says so.

use crate::actions::ErrorKind;
use crate::workflow::interpreter::ActionError;
use crate::workflow::value::Data;

use super::ArgType::*;
use super::{arg, Action, Call};

pub const SEND: Action = Action {
    name: "notify.send",
    doc: "Send a notification to a configured channel: a webhook (Slack-compatible JSON), an email or a web push to the devices subscribed.",
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
        Err(crate::notify::Error::UnknownChannel(name)) => {
            let defined: Vec<&str> = f
                .notifier
                .config()
                .channels
                .keys()
                .map(String::as_str)
                .collect();
            Err(ErrorKind::Invalid.error(format!(
                "no notification channel named \"{name}\" in the configuration (defined in [notify.channels]: {}): nothing was sent; define it and resume, or skip the step",
                defined.join(", ")
            )))
        }
        Err(x) => {
            tracing::debug!(error = %x, "Notification not sent");
            Ok(Data::map([
                ("delivered", Data::Bool(false)),
                ("error", Data::from(x.to_string())),
                ("note", Data::from(format!("not sent: {x}"))),
                ("text", text),
            ]))
        }
    }
}
