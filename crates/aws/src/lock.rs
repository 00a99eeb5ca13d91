//! The environment lock in DynamoDB, as Terraform's S3 backend keeps its own: one item per
//! environment (partition key `LockID`, `infra/<env>`), written with a conditional PutItem
//! (`attribute_not_exists(LockID)`) so only one run can hold it, deleted on release only by
//! its holder (`Id = :id`). The default table is created on first use.

use crate::{sdk, AwsError, Clients};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use infra_protocol::{lock_key, LockAction, LockHolder, LockReply, LockRequest};
use std::collections::HashMap;
use std::time::Duration;

/// Does what `req` asks.
pub async fn lock(c: &Clients, req: &LockRequest) -> Result<LockReply, AwsError> {
    match &req.action {
        LockAction::Acquire { holder } => acquire(c, req, holder).await,
        LockAction::Release { id } => release(c, req, id).await,
        LockAction::Inspect => holder(c, req).await.map(reply_of),
    }
}

fn reply_of(holder: Option<LockHolder>) -> LockReply {
    match holder {
        Some(holder) => LockReply::Held { holder },
        None => LockReply::Free,
    }
}

fn item(req: &LockRequest, h: &LockHolder) -> HashMap<String, AttributeValue> {
    let s = |v: &str| AttributeValue::S(v.to_string());
    HashMap::from([
        ("LockID".to_string(), s(&lock_key(&req.scope.environment))),
        ("Id".to_string(), s(&h.id)),
        ("Who".to_string(), s(&h.who)),
        ("Operation".to_string(), s(&h.operation)),
        ("Environment".to_string(), s(&h.environment)),
        ("Since".to_string(), AttributeValue::N(h.since.to_string())),
        ("Version".to_string(), s(&h.version)),
    ])
}

async fn acquire(c: &Clients, req: &LockRequest, h: &LockHolder) -> Result<LockReply, AwsError> {
    let what = format!(
        "take the lock of {} in DynamoDB table {}",
        req.scope.environment, req.table
    );
    // Twice at most: once after creating the table, once after a holder let go in between.
    for _ in 0..3 {
        let put = c
            .ddb
            .put_item()
            .table_name(&req.table)
            .set_item(Some(item(req, h)))
            .condition_expression("attribute_not_exists(LockID)")
            .send()
            .await;
        match put {
            Ok(_) => return Ok(LockReply::Acquired),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_conditional_check_failed_exception() => {
                    if let Some(holder) = holder(c, req).await? {
                        return Ok(LockReply::Held { holder });
                    }
                }
                Some(s) if s.is_resource_not_found_exception() && req.create_table => {
                    create_table(c, &req.table).await?;
                }
                Some(s) if s.is_resource_not_found_exception() => {
                    return Err(AwsError::new(
                        what,
                        format!("the table {} does not exist: create it (partition key `LockID`, a string), or remove `lock.dynamodb_table` to use infra's own table", req.table),
                    ))
                }
                _ => return Err(sdk(what, e)),
            },
        }
    }
    Err(AwsError::new(
        what,
        "the lock kept changing hands; try again",
    ))
}

async fn release(c: &Clients, req: &LockRequest, id: &str) -> Result<LockReply, AwsError> {
    let out = c
        .ddb
        .delete_item()
        .table_name(&req.table)
        .key(
            "LockID",
            AttributeValue::S(lock_key(&req.scope.environment)),
        )
        .condition_expression("Id = :id")
        .expression_attribute_values(":id", AttributeValue::S(id.to_string()))
        .send()
        .await;
    match out {
        Ok(_) => Ok(LockReply::Released),
        Err(e) => match e.as_service_error() {
            Some(s) if s.is_conditional_check_failed_exception() => {
                holder(c, req).await.map(reply_of)
            }
            Some(s) if s.is_resource_not_found_exception() => Ok(LockReply::Free),
            _ => Err(sdk(
                format!("release the lock of {}", req.scope.environment),
                e,
            )),
        },
    }
}

/// Who holds the lock now (a consistent read), if anyone.
async fn holder(c: &Clients, req: &LockRequest) -> Result<Option<LockHolder>, AwsError> {
    let what = format!("read the lock of {}", req.scope.environment);
    let out = c
        .ddb
        .get_item()
        .table_name(&req.table)
        .key(
            "LockID",
            AttributeValue::S(lock_key(&req.scope.environment)),
        )
        .consistent_read(true)
        .send()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => match e.as_service_error() {
            Some(s) if s.is_resource_not_found_exception() => return Ok(None),
            _ => return Err(sdk(what, e)),
        },
    };
    let Some(item) = out.item() else {
        return Ok(None);
    };
    let s = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => v.clone(),
        Some(AttributeValue::N(v)) => v.clone(),
        _ => String::new(),
    };
    Ok(Some(LockHolder {
        id: s("Id"),
        who: s("Who"),
        operation: s("Operation"),
        environment: s("Environment"),
        since: s("Since").parse().unwrap_or(0),
        version: s("Version"),
    }))
}

/// Creates infra's lock table (on-demand billing) and waits until it is active.
async fn create_table(c: &Clients, table: &str) -> Result<(), AwsError> {
    let what = format!("create the lock table {table} in DynamoDB");
    let build = |e: aws_sdk_dynamodb::error::BuildError| AwsError::new(&what, e.to_string());
    let created = c
        .ddb
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("LockID")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("LockID")
                .key_type(KeyType::Hash)
                .build()
                .map_err(build)?,
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await;
    if let Err(e) = created {
        // Another run created it at the same moment: fine.
        if !e
            .as_service_error()
            .is_some_and(|s| s.is_resource_in_use_exception())
        {
            return Err(sdk(what, e));
        }
    }
    for _ in 0..120 {
        let out = c
            .ddb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk(&what, e))?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(AwsError::new(
        what,
        "the table did not become active in 2 minutes",
    ))
}
