//! Hang up (`DELETE`): every leg of the calls named, or of those among them that have
//! `phoneNumber` among their parties.

use super::input::PartyNumber;
use super::{ActionError, Ctx, InputError};

#[derive(Debug, Clone, Default)]
pub struct HangUp {
    pub phone_number: Option<PartyNumber>,
}

impl HangUp {
    /// From the query's `phoneNumber` (absent: every call). Given, it must be a phone
    /// number: `?phoneNumber=+` (a space once decoded) is not "no filter".
    pub fn parse(phone_number: Option<&str>) -> Result<HangUp, InputError> {
        let phone_number = match phone_number {
            None => None,
            Some(n) => Some(PartyNumber::parse(n).ok_or(InputError::PhoneNumber)?),
        };
        Ok(HangUp { phone_number })
    }

    /// Hangs up one call, locked (its legs as they are now); `false` when it had no leg
    /// left to hang up or does not have `phoneNumber` among its parties.
    pub async fn apply(&self, cx: Ctx<'_>) -> Result<bool, ActionError> {
        if let Some(n) = &self.phone_number {
            if cx.call.leg_by_number(cx.dir, n.as_str()).is_none() {
                return Ok(false);
            }
        }
        let mut any = false;
        for leg in &cx.call.legs {
            any |= cx.pbx.hang_up(&leg.id).await?;
        }
        let call = cx.call.id.clone();
        cx.guard.settle(cx.calls, move |t| t.call(&call).is_none());
        Ok(any)
    }
}
