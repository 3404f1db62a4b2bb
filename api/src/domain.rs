//! Domain values with a fixed set of names: one enum each, used from the store (as TEXT
//! columns, through `sqlx::Type`) through the app layer to the spec (`poem_openapi::Enum`),
//! so nothing spells `"queued"` by hand and a match over them is exhaustive.
//!
//! This module depends on nothing else in the crate (it is the bottom layer).

/// An enum whose JSON names are also the strings the store keeps: `as_str` for writing
/// them, `parse` for reading them back, and `sqlx::Type`/`Encode`/`Decode` as TEXT on every
/// engine (decoding an unknown name is an error, never a default).
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, poem_openapi::Enum, serde::Serialize, serde::Deserialize)]
        $(#[$meta])*
        pub enum $name {
            $($(#[$vmeta])* #[oai(rename = $wire)] #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }

            /// The value named `s`; `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'static str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'static str as sqlx::Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let s = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                Self::parse(s).ok_or_else(|| format!("unknown {} in the store: {s:?}", stringify!($name)).into())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// Where a task is in its life.
    TaskStatus {
        Pending = "pending",
        Queued = "queued",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl TaskStatus {
    /// Completed, failed or cancelled: nothing more happens to the task.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled)
    }
}

wire_enum! {
    /// The step types workers know how to run (the `type` of a step in a tool's config).
    StepKind {
        Echo = "echo",
        ImageGen = "image-gen",
        BackgroundRemove = "background-remove",
        ThreeD = "3d-gen",
        PointCloud = "point-cloud",
    }
}

wire_enum! {
    /// Where a webhook delivery is: `pending` until an attempt gets a 2xx (`succeeded`) or
    /// its retries run out, its endpoint answers 410 or is gone (`failed`).
    WebhookDeliveryStatus {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

wire_enum! {
    /// Where a step of a task is.
    StepStatus {
        Pending = "pending",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        Skipped = "skipped",
    }
}

wire_enum! {
    /// What a task event says. Milestones (`queued`, the step events and the terminal ones)
    /// are stored; `progress`, `queue_position` and `connected` are live only.
    EventKind {
        Queued = "queued",
        StepStarted = "step_started",
        StepCompleted = "step_completed",
        Progress = "progress",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        QueuePosition = "queue_position",
        Connected = "connected",
    }
}

impl EventKind {
    /// The event that ends a task's stream.
    pub fn is_terminal(self) -> bool {
        matches!(self, EventKind::Completed | EventKind::Failed | EventKind::Cancelled)
    }

    /// The terminal event of a task that ended with `status`.
    pub fn terminal(status: TaskStatus) -> Option<Self> {
        match status {
            TaskStatus::Completed => Some(EventKind::Completed),
            TaskStatus::Failed => Some(EventKind::Failed),
            TaskStatus::Cancelled => Some(EventKind::Cancelled),
            TaskStatus::Pending | TaskStatus::Queued | TaskStatus::Running => None,
        }
    }
}

wire_enum! {
    /// The kinds of `credit_transactions` rows.
    TransactionType {
        Purchase = "purchase",
        Spend = "spend",
        Refund = "refund",
        Bonus = "bonus",
        AdminAdjust = "admin_adjust",
        Reserve = "reserve",
    }
}

wire_enum! {
    /// The API a provider speaks: three paid APIs and the built-in offline one.
    #[oai(rename = "ProviderType")]
    ProviderKind {
        OpenAi = "openai",
        Fal = "fal",
        Tripo = "tripo",
        Local = "local",
    }
}

wire_enum! {
    /// Where a device sign-in (RFC 8628) is: waiting for the user, decided, or used.
    DeviceCodeStatus {
        Pending = "pending",
        Approved = "approved",
        Denied = "denied",
        Consumed = "consumed",
    }
}

wire_enum! {
    /// Where a banner shows.
    BannerType {
        Main = "main",
        Side = "side",
    }
}

wire_enum! {
    /// Where a banner link opens.
    LinkTarget {
        SameTab = "_self",
        NewTab = "_blank",
    }
}

wire_enum! {
    /// A Stripe Checkout Session's state as we track it.
    CheckoutStatus {
        Open = "open",
        Completed = "completed",
        Expired = "expired",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(TransactionType::parse("admin_adjust"), Some(TransactionType::AdminAdjust));
        assert_eq!(TaskStatus::parse("Queued"), None);
        assert_eq!(EventKind::terminal(TaskStatus::Failed), Some(EventKind::Failed));
        assert!(EventKind::terminal(TaskStatus::Running).is_none());
    }
}
