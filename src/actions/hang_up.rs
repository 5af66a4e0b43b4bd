//! Hang up (`DELETE`): every leg of the calls named, or of those among them that have
//! `phoneNumber` among their parties.

use std::sync::Arc;

use super::input::PartyNumber;
use super::pbx::Pbx;
use super::{ActionError, InputError};
use crate::calls::Calls;
use crate::config::Directory;

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

    /// Hangs up; returns the calls that had legs to hang up.
    pub async fn apply(
        &self,
        calls: &Calls,
        pbx: &Pbx,
        dir: &Directory,
        ids: &[Arc<str>],
    ) -> Result<Vec<Arc<str>>, ActionError> {
        let app = &pbx.names().app;
        let mut done = Vec::new();
        for call in ids {
            let Some(snap) = calls.snapshot(call, app) else {
                continue;
            };
            if let Some(n) = &self.phone_number {
                if snap.leg_by_number(dir, n.as_str()).is_none() {
                    continue;
                }
            }
            let mut any = false;
            for leg in &snap.legs {
                any |= pbx.hang_up(&leg.id).await?;
            }
            if any {
                done.push(call.clone());
            }
        }
        Ok(done)
    }
}
