//! Placeholder until the decoder lands.
use bytes::Bytes;

use super::{DecodeContext, Decoded};
use crate::domain::{RejectReason, Rejection};

pub(super) fn decode(payload: &Bytes, _context: &DecodeContext<'_>) -> Decoded {
    Decoded::rejected(Rejection::new(RejectReason::MalformedPayload, "format not supported yet", None, payload.clone()))
}
