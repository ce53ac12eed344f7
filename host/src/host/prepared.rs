//! One adapter of one host, ready to serve: the component compiled and
//! linked once, its configuration, its limits, and the instances it keeps
//! warm. A call takes a warm instance or makes and configures a new one,
//! and gives it back when the call leaves it sound.

use super::instance::{Instance, fault};
use super::warm::Warm;
use crate::bindings::PluginPre;
use crate::imports::{CallState, Links};
use crate::limits::Limits;
use crate::slots::Idle;
use crate::{CallError, Error, Request, Response, Runtime};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::Component;

/// An adapter compiled and linked against the host's imports, with the
/// configuration every instance of it is given.
pub(super) struct Prepared {
    runtime: Runtime,
    pre: PluginPre<CallState>,
    config: String,
    limits: Limits,
    warm: Arc<Warm>,
}

impl Prepared {
    /// Links `component` (already checked to be an adapter of a supported
    /// contract) to the host's imports.
    pub(super) fn link(
        runtime: Runtime,
        path: &Path,
        name: &str,
        component: &Component,
        config: String,
        limits: Limits,
    ) -> Result<Prepared, Error> {
        let instance_pre = runtime
            .inner()
            .linker
            .instantiate_pre(component)
            .map_err(|source| Error::UnsupportedImport {
                path: path.to_path_buf(),
                message: format!("{source:#}"),
                source,
            })?;
        let pre = PluginPre::new(instance_pre).map_err(|source| Error::Instantiate {
            adapter: name.to_string(),
            message: format!("its exports do not match the contract: {source:#}"),
            source,
        })?;
        let warm = Arc::new(Warm::default());
        runtime
            .inner()
            .slots
            .register(Arc::downgrade(&warm) as std::sync::Weak<dyn Idle>);
        Ok(Prepared {
            runtime,
            pre,
            config,
            limits,
            warm,
        })
    }

    /// The limits every instance runs under.
    pub(super) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Has one instance accept the configuration, so that a configuration
    /// the adapter refuses fails the build rather than the first call. (That
    /// instance is not kept: the host's links are not whole yet.)
    pub(super) async fn check_config(&self, links: &Links, due: Instant) -> Result<(), Error> {
        let instance_error = |source: wasmtime::Error| Error::Instantiate {
            adapter: links.name.to_string(),
            message: format!("{source:#}"),
            source,
        };
        let mut instance = Instance::new(self.runtime.inner(), &self.pre, links, &self.limits, due)
            .await
            .map_err(instance_error)?;
        let refusal = instance
            .configure(&self.config)
            .await
            .map_err(instance_error)?;
        refusal.map_err(|e| Error::AdapterConfig {
            adapter: links.name.to_string(),
            field: e.field,
            message: e.message,
        })
    }

    /// Runs `request` in an instance that reaches `links`: a warm one, or a
    /// new one configured first.
    pub(super) async fn call(
        &self,
        links: &Links,
        request: &Request,
        due: Instant,
        emit: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    ) -> Result<Response, CallError> {
        let name = &links.name;
        let started = Instant::now();
        let mut instance = match self.warm.take() {
            Some(instance) => instance,
            None => self.configured(links, due).await?,
        };
        let answer = match instance.call(request, started, due, emit).await {
            Ok(answer) => answer,
            Err(trap) => return Err(instance.fault(name, trap)),
        };
        if instance.is_sound() {
            self.warm.keep(instance, &self.runtime.inner().slots);
        }
        let max = self.limits.max_response_bytes;
        match answer {
            Ok(response) if response.payload.len() > max => Err(CallError::AdapterFault(format!(
                "adapter `{name}` answered `{}` with {}, over its limit of {} (HostBuilder::max_response_bytes)",
                request.command,
                crate::limits::bytes(response.payload.len()),
                crate::limits::bytes(max)
            ))),
            Ok(response) => Ok(response.into()),
            Err(error) => Err(error.into()),
        }
    }

    /// A new instance that accepted the configuration.
    async fn configured(&self, links: &Links, due: Instant) -> Result<Instance, CallError> {
        let name = &links.name;
        let mut instance = Instance::new(self.runtime.inner(), &self.pre, links, &self.limits, due)
            .await
            .map_err(|e| fault(name, e, None))?;
        match instance.configure(&self.config).await {
            Ok(Ok(())) => Ok(instance),
            Ok(Err(e)) => Err(CallError::AdapterFault(format!(
                "adapter `{name}` refused at call time the configuration it accepted at start: {}",
                e.message
            ))),
            Err(e) => Err(instance.fault(name, e)),
        }
    }
}
