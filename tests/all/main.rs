mod support;

mod anthropic;
mod audit;
mod capabilities;
mod deadlines;
mod faults;
mod first_party;
mod hot_reload;
mod http_api;
mod languages;
mod logging;
mod openai_sdk;
mod routing;
mod sandbox;
mod streaming;
