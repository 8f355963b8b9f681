mod support;

mod anthropic;
mod capabilities;
mod faults;
mod first_party;
mod hot_reload;
mod http_api;
mod openai_sdk;
mod routing;
mod sandbox;
mod streaming;
