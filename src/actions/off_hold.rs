//! OffHold: the held party stops hearing music and goes back into the call's bridge.

use super::input::{Body, ViewId};
use super::stasis::ensure_bridge;
use super::{ActionError, Ctx, Done, InputError, StateError};
use crate::calls::Note;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffHold {
    pub view: Option<ViewId>,
}

impl OffHold {
    pub fn parse(b: &Body) -> Result<OffHold, InputError> {
        Ok(OffHold {
            view: ViewId::parse(b)?,
        })
    }

    pub async fn apply(&self, cx: Ctx<'_>) -> Result<Done, ActionError> {
        let held = cx
            .call
            .legs
            .iter()
            .find(|l| l.held_by_uapid && l.in_stasis)
            .ok_or(StateError::NotOnHold)?;
        let bridge = ensure_bridge(&cx).await?;
        cx.pbx.stop_moh(&held.id).await?;
        cx.pbx.bridge_add(&bridge, &held.id).await?;
        cx.calls.note(Note::Unheld {
            channel: held.id.clone(),
        });
        let (id, b) = (held.id.clone(), bridge);
        let done = cx.done();
        cx.guard.settle(cx.calls, move |t| {
            t.channel(&id)
                .is_none_or(|c| c.bridge.as_deref() == Some(&b))
        });
        Ok(done)
    }
}
