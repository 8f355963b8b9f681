mod support;

mod anthropic;
mod capabilities;
mod faults;
mod first_party;
mod gateway;
mod hot_reload;
mod http_api;
mod languages;
mod openai_sdk;
mod routing;
mod sandbox;
mod streaming;
