//! `[credits]` (grants) and `[stripe]` (purchases through Stripe Checkout).

use secrecy::SecretString;

use super::ConfigError;
use super::section::{at_least, http_url, section};

section! {
    /// Credits granted without a purchase.
    pub struct CreditsLayer => CreditsSettings in "credits" {
        signup_bonus: i64 {
            env: "FUNMAGIC_SIGNUP_BONUS_CREDITS",
            shown: "200 embedded, 0 scale-out",
            check: at_least(0),
            help: "credits granted once to every new account (the embedded default welcomes newcomers so the quickstart runs)",
        },
    }
}

section! {
    /// Stripe, as given (see [`StripeSettings`] for the resolved form).
    pub struct StripeLayer => StripeValues in "stripe" {
        secret_key: SecretString {
            env: "STRIPE_SECRET_KEY",
            shown: "(unset: purchases off)",
            help: "Stripe secret key for Checkout Sessions",
        },
        webhook_secret: SecretString {
            env: "STRIPE_WEBHOOK_SECRET",
            shown: "(unset)",
            help: "signing secret of the /api/webhooks/stripe endpoint (whsec_…)",
        },
        api_url: String {
            env: "FUNMAGIC_STRIPE_API_URL",
            default: "https://api.stripe.com",
            check: http_url,
            help: "Stripe API base URL",
        },
        success_url: String {
            env: "FUNMAGIC_CHECKOUT_SUCCESS_URL",
            shown: "<web_url>/credits?checkout=success",
            check: http_url,
            help: "where Checkout sends the buyer after paying",
        },
        cancel_url: String {
            env: "FUNMAGIC_CHECKOUT_CANCEL_URL",
            shown: "<web_url>/credits?checkout=cancelled",
            check: http_url,
            help: "where Checkout sends the buyer on cancel",
        },
        webhook_tolerance_secs: u64 {
            env: "FUNMAGIC_STRIPE_WEBHOOK_TOLERANCE_SECS",
            default: 300u64,
            help: "maximum age of a signed webhook",
        },
    }
}

/// Stripe, when purchases are on.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    pub secret_key: SecretString,
    pub webhook_secret: Option<SecretString>,
    pub api_url: String,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub webhook_tolerance_secs: u64,
}

impl StripeValues {
    /// `None` without a secret key (purchases off); a webhook secret alone is a mistake.
    pub(super) fn resolve(self) -> Result<Option<StripeSettings>, ConfigError> {
        let Some(secret_key) = self.secret_key else {
            if self.webhook_secret.is_some() {
                return Err(ConfigError::new("STRIPE_SECRET_KEY", "required when STRIPE_WEBHOOK_SECRET is set"));
            }
            return Ok(None);
        };
        Ok(Some(StripeSettings {
            secret_key,
            webhook_secret: self.webhook_secret,
            api_url: self.api_url.trim_end_matches('/').to_string(),
            success_url: self.success_url,
            cancel_url: self.cancel_url,
            webhook_tolerance_secs: self.webhook_tolerance_secs,
        }))
    }
}
