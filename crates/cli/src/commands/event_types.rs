//! `hookwire event-types …`: the catalog a tenant subscribes from.

use clap::Subcommand;
use hookwire_api::event_types::EventType;
use hookwire_api::Page;

use crate::output;
use crate::Context;

#[derive(Subcommand)]
pub enum EventTypes {
    List {
        #[arg(long)]
        include_archived: bool,
    },
    /// One type with its JSON Schema and example.
    Get { value: String },
}

pub async fn run(ctx: &Context, command: EventTypes) -> anyhow::Result<()> {
    let api = ctx.customer()?;
    match command {
        EventTypes::List { include_archived } => {
            let page: Page<EventType> = api
                .get(&format!(
                    "/v1/event-types?limit=100&include_archived={include_archived}"
                ))
                .await?;
            if ctx.json {
                return output::json(&page);
            }
            let rows: Vec<Vec<String>> = page
                .results
                .iter()
                .map(|t| vec![t.value.clone(), t.label.clone(), t.description.clone()])
                .collect();
            output::table(&["TYPE", "LABEL", "DESCRIPTION"], &rows);
        }
        EventTypes::Get { value } => {
            let t: EventType = api.get(&format!("/v1/event-types/{value}")).await?;
            output::json(&t)?;
        }
    }
    Ok(())
}
