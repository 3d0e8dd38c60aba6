//! The core's own services behind one seam (docs/services.md).
//!
//! In Greengrass a service of the core (the shadow service, the secrets
//! manager, the cloud) is a function: the SDKs invoke its ARN with the
//! request topic in the client context, and subscriptions name it as a source
//! or target. Here each is a [`CoreService`] registered once in [`Services`]:
//! the registry attaches each service with an endpoint to the router (which
//! then delivers to it directly, with no lookup per message), and a
//! function's host call becomes a [`ServiceRequest`] for the service it
//! names. Adding a service is implementing the trait and registering it at
//! start; no dispatch code changes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use ggcore_ipc::Call;
use ggcore_plugin_abi::HostErrorCode;
use tokio::sync::Notify;

use crate::group::Endpoint;
use crate::router::{Deliver, Delivery, Message, Router, TargetKind, WhenFull};

/// The shadow service's name: subscription endpoint and function name.
pub const SHADOW: &str = crate::group::SHADOW_SERVICE;
/// The secrets manager's name (`SECRETS_MANAGER_FUNCTION_ARN`).
pub const SECRETS: &str = "GGSecretManager";

/// A request to a service, as the SDKs make it: an invoke of the service's
/// function with the request topic as subject (empty for secrets).
#[derive(Debug, Clone)]
pub struct ServiceRequest {
    /// Who asks (a function ARN, `ggcore shadow`), for logs.
    pub caller: String,
    pub subject: String,
    pub payload: Bytes,
}

/// The answer to a [`ServiceRequest`]: the response document, or why the
/// service could not answer at all (a refusal it answers with a document,
/// such as a shadow's `/rejected`, is `Ok`).
pub type ServiceReply = Result<Vec<u8>, (HostErrorCode, String)>;

pub type ReplyFuture<'a> = Pin<Box<dyn Future<Output = ServiceReply> + Send + 'a>>;

/// One service of the core.
pub trait CoreService: Send + Sync {
    /// Its name (`GGShadowService`, `GGSecretManager`, `cloud`).
    fn name(&self) -> &'static str;

    /// The router endpoint it is, when it takes and sends routed messages.
    fn endpoint(&self) -> Option<Endpoint>;

    /// Answers a request (RequestResponse).
    fn request(&self, req: ServiceRequest) -> ReplyFuture<'_> {
        let _ = req;
        let name = self.name();
        Box::pin(async move { Err((HostErrorCode::BadRequest, format!("{name} takes no requests"))) })
    }

    /// Takes a routed message (see [`Deliver::deliver`]). Must not block.
    fn deliver(&self, source: &Endpoint, msg: &Message, when_full: WhenFull) -> Delivery {
        let _ = (source, msg, when_full);
        Delivery::Dropped("this service takes no messages")
    }

    /// See [`Deliver::room`].
    fn room(&self, ticket: u64) -> Option<Arc<Notify>> {
        let _ = ticket;
        None
    }

    /// Status counters for `ggcore status`, under the service's name.
    fn status(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Every registered service. Registered at start, read on every call.
#[derive(Default)]
pub struct Services {
    list: RwLock<Vec<Arc<dyn CoreService>>>,
}

impl Services {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn register(&self, service: Arc<dyn CoreService>) {
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        if list.iter().any(|s| s.name() == service.name()) {
            tracing::error!(service = service.name(), "a service with this name is already registered");
            return;
        }
        list.push(service);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn CoreService>> {
        self.list.read().unwrap_or_else(|p| p.into_inner()).iter().find(|s| s.name() == name).cloned()
    }

    /// Attaches every registered service that has an endpoint to `router`
    /// as the deliverer of its kind of target (once, at start).
    pub fn attach_to(&self, router: &Router) {
        for s in self.list.read().unwrap_or_else(|p| p.into_inner()).iter() {
            if let Some(endpoint) = s.endpoint() {
                router.attach(TargetKind::of(&endpoint), Arc::new(ServiceTarget(s.clone())));
            }
        }
    }

    /// Sends `req` to the service called `name`.
    pub async fn request(&self, name: &str, req: ServiceRequest) -> ServiceReply {
        match self.get(name) {
            Some(s) => s.request(req).await,
            None => Err((HostErrorCode::Unavailable, format!("{name} is not served by this core yet"))),
        }
    }

    /// The service a host call is for, and the request: shadow and secret
    /// calls, and invokes of a service's function ARN (what an SDK that
    /// speaks Greengrass's IPC directly sends). `None`: not a service call.
    pub fn request_of(caller: &str, call: &Call) -> Option<(&'static str, ServiceRequest)> {
        let req = |subject: String, payload: &[u8]| ServiceRequest {
            caller: caller.to_string(),
            subject,
            payload: Bytes::copy_from_slice(payload),
        };
        match call {
            Call::Shadow { op, thing, payload } => {
                let op = match op {
                    0 => "get",
                    1 => "update",
                    2 => "delete",
                    _ => "unknown",
                };
                Some((SHADOW, req(format!("$aws/things/{thing}/shadow/{op}"), payload)))
            }
            Call::GetSecret { payload } => Some((SECRETS, req(String::new(), payload))),
            Call::Invoke { function_arn, client_context, payload, .. } => {
                let name = service_of_arn(function_arn)?;
                Some((name, req(subject_of(client_context), payload)))
            }
            Call::Publish { .. } => None,
        }
    }

    /// Each service's status, by name.
    pub fn status(&self) -> serde_json::Value {
        let list = self.list.read().unwrap_or_else(|p| p.into_inner());
        serde_json::Value::Object(list.iter().filter_map(|s| Some((s.name().to_string(), s.status()?))).collect())
    }
}

/// The service a system function ARN names (`arn:aws:lambda:::function:GGShadowService`,
/// `…:GGSecretManager:1`).
fn service_of_arn(arn: &str) -> Option<&'static str> {
    let rest = arn.strip_prefix("arn:aws:lambda:::function:")?;
    let name = rest.split(':').next()?;
    [SHADOW, SECRETS].into_iter().find(|s| *s == name)
}

/// `custom.subject` of a base64 JSON client context ("" when absent).
fn subject_of(client_context: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(client_context)
        .ok()
        .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
        .and_then(|doc| doc.get("custom")?.get("subject")?.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A service as the router's deliverer for its endpoint.
struct ServiceTarget(Arc<dyn CoreService>);

impl Deliver for ServiceTarget {
    fn deliver(&self, _target: &Endpoint, source: &Endpoint, msg: &Message, when_full: WhenFull) -> Delivery {
        self.0.deliver(source, msg, when_full)
    }

    fn room(&self, _target: &Endpoint, ticket: u64) -> Option<Arc<Notify>> {
        self.0.room(ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn host_calls_name_their_service() {
        let (name, r) = Services::request_of("f", &Call::Shadow { op: 1, thing: "t".into(), payload: b"{}".to_vec() }).unwrap();
        assert_eq!((name, r.subject.as_str()), (SHADOW, "$aws/things/t/shadow/update"));
        let cc = base64::engine::general_purpose::STANDARD.encode(br#"{"custom": {"subject": "$aws/things/x/shadow/get"}}"#);
        let call = Call::Invoke {
            function_arn: "arn:aws:lambda:::function:GGShadowService".into(),
            qualifier: String::new(),
            event: false,
            client_context: cc,
            payload: vec![],
        };
        let (name, r) = Services::request_of("f", &call).unwrap();
        assert_eq!((name, r.subject.as_str()), (SHADOW, "$aws/things/x/shadow/get"));
        let secret = Call::Invoke {
            function_arn: "arn:aws:lambda:::function:GGSecretManager:1".into(),
            qualifier: String::new(),
            event: false,
            client_context: String::new(),
            payload: vec![],
        };
        assert_eq!(Services::request_of("f", &secret).unwrap().0, SECRETS);
        let other = Call::Invoke {
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:GGShadowService".into(),
            qualifier: String::new(),
            event: false,
            client_context: String::new(),
            payload: vec![],
        };
        assert!(Services::request_of("f", &other).is_none(), "a user's function of that name is not the service");
    }

    #[tokio::test]
    async fn an_unregistered_service_is_unavailable() {
        let s = Services::new();
        let r = s.request(SECRETS, ServiceRequest { caller: "f".into(), subject: String::new(), payload: Bytes::new() }).await;
        assert_eq!(r.unwrap_err().0, HostErrorCode::Unavailable);
    }
}
