//! The gateway's own HTTP headers, named once.

use http::header::HeaderName;

/// Response headers: the id feedback refers to, and the version that answered.
pub const INTERACTION_ID: &str = "x-flywheel-interaction-id";
pub const MODEL_VERSION: &str = "x-flywheel-model-version";
/// The request header that pins a version (for keys that may pin).
pub const PIN_VERSION: &str = "x-flywheel-version";

/// Request headers the gateway reads, as names made at compile time: a
/// lookup by `&str` parses the name first, on every request.
pub const USER_HEADER: HeaderName = HeaderName::from_static("x-flywheel-user");
pub const SEGMENT_HEADER: HeaderName = HeaderName::from_static("x-flywheel-segment");
pub const SESSION_HEADER: HeaderName = HeaderName::from_static("x-flywheel-session");
