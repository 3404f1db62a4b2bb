//! OpenAPI links: which answer feeds which next call (create → get → update → delete).
//!
//! poem-openapi has no attribute for response links, so they are declared here, one row per
//! link, and added to the spec poem-openapi generates (`spec_json`). Clients and tools that
//! read links (schemathesis' stateful phase, API explorers) can chain operations with real
//! ids instead of guessing them. A unit test checks every row names real operations and
//! real parameters, so a renamed route cannot leave a dangling link.

use openapiv3::{Link, LinkOperation, OpenAPI, Operation, ReferenceOr, StatusCode};

/// `(from operationId, status, link name, to operationId, [(parameter, runtime expression)])`.
type Row = (&'static str, u16, &'static str, &'static str, &'static [(&'static str, &'static str)]);

const TASK_ID: &[(&str, &str)] = &[("id", "$response.body#/task/id")];
const ID: &[(&str, &str)] = &[("id", "$response.body#/id")];
const USER_ID: &[(&str, &str)] = &[("id", "$response.body#/user/id")];

pub const LINKS: &[Row] = &[
    ("task_create", 201, "GetTask", "task_get", TASK_ID),
    ("task_create", 201, "ListTaskEvents", "task_events_list", TASK_ID),
    ("task_create", 201, "CancelTask", "task_cancel", TASK_ID),
    ("admin_task_retry", 201, "GetTask", "task_get", TASK_ID),
    ("upload_complete", 200, "GetAsset", "asset_get", ID),
    ("upload_complete", 200, "PublishAsset", "asset_publish", ID),
    ("upload_complete", 200, "UnpublishAsset", "asset_unpublish", ID),
    ("upload_complete", 200, "DeleteAsset", "asset_delete", ID),
    ("admin_upload_complete", 200, "GetAsset", "asset_get", ID),
    ("admin_tool_create", 200, "UpdateTool", "admin_tool_update", ID),
    ("admin_tool_create", 200, "DeleteTool", "admin_tool_delete", ID),
    ("admin_tool_type_create", 200, "DeleteToolType", "admin_tool_type_delete", ID),
    ("admin_provider_create", 201, "UpdateProvider", "admin_provider_update", ID),
    ("admin_provider_create", 201, "TestProvider", "admin_provider_test", ID),
    ("admin_banner_create", 201, "UpdateBanner", "admin_banner_update", ID),
    ("admin_banner_create", 201, "DeleteBanner", "admin_banner_delete", ID),
    ("admin_credit_package_create", 200, "UpdatePackage", "admin_credit_package_update", ID),
    ("admin_credit_package_create", 200, "DeletePackage", "admin_credit_package_delete", ID),
    ("auth_api_key_create", 200, "RevokeApiKey", "auth_api_key_revoke", &[("id", "$response.body#/apiKey/id")]),
    ("auth_sign_up_email", 200, "GetUser", "admin_user_get", USER_ID),
    ("auth_sign_up_email", 200, "AdjustCredits", "admin_user_credits_adjust", USER_ID),
    ("auth_sign_up_email", 200, "BanUser", "admin_user_ban", USER_ID),
    ("auth_sign_up_email", 200, "UserTransactions", "admin_user_transaction_list", USER_ID),
    (
        "auth_device_code_create",
        200,
        "PendingDeviceCode",
        "auth_device_pending_get",
        &[("user_code", "$response.body#/user_code")],
    ),
];

fn operation_mut<'a>(api: &'a mut OpenAPI, id: &str) -> Option<&'a mut Operation> {
    api.paths
        .paths
        .values_mut()
        .filter_map(|p| match p {
            ReferenceOr::Item(item) => Some(item),
            ReferenceOr::Reference { .. } => None,
        })
        .find_map(|item| item.iter_mut_ops().map(|(_, op)| op).find(|op| op.operation_id.as_deref() == Some(id)))
}

/// Adds [`LINKS`] to `api`. Panics on a row that names an operation or response the spec
/// does not have (a programming error the unit test catches).
pub fn add_links(api: &mut OpenAPI) {
    for (from, status, name, to, params) in LINKS {
        let op = operation_mut(api, from).unwrap_or_else(|| panic!("link source {from} is not an operation"));
        let Some(ReferenceOr::Item(response)) = op.responses.responses.get_mut(&StatusCode::Code(*status)) else {
            panic!("{from} has no {status} response to link from");
        };
        response.links.insert(
            (*name).to_string(),
            ReferenceOr::Item(Link {
                description: None,
                operation: LinkOperation::OperationId((*to).to_string()),
                request_body: None,
                parameters: params.iter().map(|(k, v)| ((*k).to_string(), serde_json::Value::from(*v))).collect(),
                server: None,
                extensions: Default::default(),
            }),
        );
    }
}

/// `iter_mut_ops` for a path item: poem-openapi only emits the methods we use.
trait PathItemOps {
    fn iter_mut_ops(&mut self) -> Box<dyn Iterator<Item = (&'static str, &mut Operation)> + '_>;
}

impl PathItemOps for openapiv3::PathItem {
    fn iter_mut_ops(&mut self) -> Box<dyn Iterator<Item = (&'static str, &mut Operation)> + '_> {
        Box::new(
            [
                ("get", self.get.as_mut()),
                ("put", self.put.as_mut()),
                ("post", self.post.as_mut()),
                ("delete", self.delete.as_mut()),
                ("patch", self.patch.as_mut()),
                ("head", self.head.as_mut()),
                ("options", self.options.as_mut()),
                ("trace", self.trace.as_mut()),
            ]
            .into_iter()
            .filter_map(|(m, op)| op.map(|op| (m, op))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_targets_a_real_operation_and_parameter() {
        let api: OpenAPI = serde_json::from_str(&super::super::api_service().spec()).unwrap();
        for (from, _, name, to, params) in LINKS {
            let mut api = api.clone();
            let target = operation_mut(&mut api, to).unwrap_or_else(|| panic!("{from}.{name}: no operation {to}"));
            for (param, expr) in *params {
                let known = target.parameters.iter().any(|p| match p {
                    ReferenceOr::Item(p) => p.parameter_data_ref().name == *param,
                    ReferenceOr::Reference { .. } => false,
                });
                assert!(known, "{from}.{name}: {to} has no parameter {param}");
                assert!(expr.starts_with("$response.body#/"), "{expr}");
            }
        }
        // And applying them succeeds (every source operation and status exists).
        let mut api = api;
        add_links(&mut api);
    }
}
