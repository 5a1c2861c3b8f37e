//! `publish`: pushes files as one OCI 1.1 artifact (an `artifactType`, one
//! layer per file with its title, annotations naming the source commit and
//! the run) to an OCI distribution registry (`to: HOST[:PORT]/REPO:TAG`, over
//! the host's `wasi:http`, so only what `grants.net` names is reachable) or to
//! an OCI image-layout directory (`to: oci:DIR:TAG`, in the workspace or a
//! directory granted for writing), and attaches the run's signed attestations
//! to it as a referrer. A tag names one artifact: pushing different content to
//! an existing tag is refused unless `overwrite: true`.
//!
//! ```yaml
//! publish:
//!   uses: publish
//!   needs: [sign]
//!   grants: { net: ['127.0.0.1:5000'], secrets: [registry-password] }
//!   with:
//!     files: [dist/app, dist/app.sig]
//!     to: 127.0.0.1:5000/acme/app:1.2.0
//!     revision: ${{ steps.checkout.outputs.commit }}
//!     auth: { username: ci, password-secret: registry-password }
//! ```

mod http;

use flow_oci::manifest::{
    ANNOTATION_FLOW_RUN, ANNOTATION_REVISION, ANNOTATION_SOURCE, ARTIFACT_TYPE_FLOW,
    ARTIFACT_TYPE_IN_TOTO,
};
use flow_oci::{ArtifactBuilder, Client, Credentials, Target};
use flow_plugin_sdk::{
    Context, Description, Param, ParamType, Plugin, StepError, export_plugin, provenance, secrets,
    signing,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

struct Publish;

/// Media type of one DSSE envelope layer.
const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Params {
    files: Option<Value>,
    promote_from: Option<String>,
    trusted_key: Option<String>,
    to: String,
    artifact_type: String,
    revision: Option<String>,
    source: Option<String>,
    annotations: Map<String, Value>,
    overwrite: bool,
    attestations: bool,
    auth: Option<Auth>,
    plain_http: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Auth {
    username: Option<String>,
    password_secret: Option<String>,
    token_secret: Option<String>,
}

fn credentials(auth: &Auth) -> Result<Credentials, StepError> {
    match (
        auth.username.as_deref(),
        auth.password_secret.as_deref(),
        auth.token_secret.as_deref(),
    ) {
        (Some(username), Some(secret), None) => Ok(Credentials::Basic {
            username: username.to_owned(),
            password: secrets::get(secret)?,
        }),
        (None, None, Some(secret)) => Ok(Credentials::Bearer(secrets::get(secret)?)),
        _ => Err(StepError::new(
            "`auth` takes `username` with `password-secret`, or `token-secret`",
        )),
    }
}

/// Loopback registries speak plain HTTP.
fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

impl Plugin for Publish {
    type Params = Params;

    fn describe() -> Description {
        Description::new(
            "publish",
            env!("CARGO_PKG_VERSION"),
            "Publishes files as an OCI 1.1 artifact to a registry or an OCI image-layout directory, with the run's attestations attached",
        )
        .param(Param::new(
            "files",
            ParamType::Any,
            "the files, relative to the workspace: one layer each, titled with its file name",
        ))
        .param(Param::string(
            "promote-from",
            "instead of `files`: copy the artifact at `HOST/REPO@sha256:…` (with its referrers) to `to`, once its attestations verify",
        ))
        .param(Param::string(
            "trusted-key",
            "with `promote-from`: the key (under `keys:`, granted) the attestations must be signed with",
        ))
        .param(Param::string("to", "`HOST[:PORT]/REPO:TAG` (a registry) or `oci:DIR:TAG` (an OCI image layout, relative to the workspace)").required())
        .param(Param::string("artifact-type", "the artifact's `artifactType`").default(ARTIFACT_TYPE_FLOW))
        .param(Param::string("revision", "the source commit (`org.opencontainers.image.revision`)"))
        .param(Param::string("source", "the source repository (`org.opencontainers.image.source`)"))
        .param(Param::new("annotations", ParamType::Object, "more manifest annotations").default(json!({})))
        .param(Param::boolean("overwrite", "replace what the tag names if it differs (refused otherwise)").default(false))
        .param(Param::boolean("attestations", "attach the run's signed attestations as a referrer").default(true))
        .param(Param::new("auth", ParamType::Object, "`{ username, password-secret }` or `{ token-secret }`: credentials from granted secrets"))
        .param(Param::boolean("plain-http", "talk plain HTTP to the registry (always for loopback addresses)").default(false))
        .output("digest", "the artifact manifest's digest")
        .output("reference", "where it is, by tag")
        .output("outcome", "created, unchanged or replaced")
        .output("attestations-digest", "the digest of the attached attestations, if any")
    }

    fn run(params: Params, ctx: &mut Context) -> Result<(), StepError> {
        let target = Target::parse(&params.to)?;
        let mut client = Client::new(http::WasiTransport);
        if let Target::Registry(r) = &target {
            if params.plain_http || is_loopback(&r.host) {
                client = client.with_plain_http(r.host.clone());
            }
            if let Some(auth) = &params.auth {
                client = client.with_credentials(r.host.clone(), credentials(auth)?);
            }
        }

        if let Some(from) = &params.promote_from {
            if params.files.is_some() {
                return Err(StepError::new(
                    "give `files` (publish) or `promote-from` (promote), not both",
                ));
            }
            return promote(&client, from, &target, &params, ctx);
        }
        let files = flow_plugin_sdk::params::workspace_paths(
            params
                .files
                .as_ref()
                .ok_or("`files` (or `promote-from`) is required")?,
            "files",
        )?;

        let mut builder = ArtifactBuilder::new().artifact_type(params.artifact_type.clone());
        builder = builder.annotation(ANNOTATION_FLOW_RUN, ctx.run_id());
        if let Some(revision) = &params.revision {
            builder = builder.annotation(ANNOTATION_REVISION, revision.clone());
        }
        if let Some(source) = &params.source {
            builder = builder.annotation(ANNOTATION_SOURCE, source.clone());
        }
        for (key, value) in &params.annotations {
            let value = value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            builder = builder.annotation(key.clone(), value);
        }
        for file in &files {
            builder = builder.file(file)?;
        }
        let artifact = builder.build()?;
        let published = flow_oci::publish_observed(
            &client,
            &target,
            &artifact,
            params.overwrite,
            &|done, total| ctx.progress(done, Some(total), "bytes"),
        )?;
        let outcome = match published.outcome {
            flow_oci::Outcome::Created => "created",
            flow_oci::Outcome::Unchanged => "unchanged",
            flow_oci::Outcome::Replaced { .. } => "replaced",
        };
        ctx.info(&format!(
            "{} {} ({})",
            outcome,
            published.reference,
            published.digest()
        ));
        ctx.set_output("digest", &published.digest().to_string());
        ctx.set_output("reference", &published.reference);
        ctx.set_output("outcome", outcome);
        provenance::add_dependency(
            &published.reference,
            Some("published"),
            &[("sha256", &published.digest().hex())],
        );

        if params.attestations {
            let statements = provenance::run_attestations();
            if statements.is_empty() {
                ctx.warn("the run records no attestations yet (no signing key, or no step completed): none attached");
            } else {
                let mut referrer = ArtifactBuilder::new()
                    .artifact_type(ARTIFACT_TYPE_IN_TOTO)
                    .subject(published.descriptor.clone())
                    .annotation(ANNOTATION_FLOW_RUN, ctx.run_id());
                for (name, bytes) in statements.iter() {
                    referrer = referrer.bytes(name, DSSE_MEDIA_TYPE, bytes.clone())?;
                }
                let attached = flow_oci::attach(&client, &target, &referrer.build()?)?;
                ctx.info(&format!(
                    "attached {} attestations as {}",
                    statements.len(),
                    attached.digest()
                ));
                ctx.set_output("attestations-digest", &attached.digest().to_string());
            }
        }
        Ok(())
    }
}

/// Copy an artifact by digest from one repository to another, after checking
/// that attestations are attached to it and that every one is signed by the
/// trusted key.
fn promote(
    client: &Client<http::WasiTransport>,
    from: &str,
    to: &Target,
    params: &Params,
    ctx: &mut Context,
) -> Result<(), StepError> {
    let from = flow_oci::RegistryRef::parse(from)?;
    let Some(digest) = from.digest else {
        return Err(StepError::new(format!(
            "promote by digest: write `promote-from: {}@sha256:…`",
            from.name()
        )));
    };
    let Target::Registry(to) = to else {
        return Err(StepError::new(
            "promotion copies between registry repositories: `to` must be `HOST[:PORT]/REPO:TAG`",
        ));
    };
    let key = params.trusted_key.as_deref().ok_or(
        "`promote-from` needs `trusted-key`: the key the attestations must be signed with",
    )?;
    let referrers = client.pull_referrers(&from, &digest, Some(ARTIFACT_TYPE_IN_TOTO))?;
    let envelopes: Vec<(String, &Vec<u8>)> = referrers
        .iter()
        .flat_map(|r| {
            r.files
                .iter()
                .map(|(d, bytes)| (d.title().unwrap_or("(untitled)").to_owned(), bytes))
        })
        .collect();
    if envelopes.is_empty() {
        return Err(StepError::new(format!(
            "refusing to promote {}@{digest}: no attestations are attached to it",
            from.name()
        )));
    }
    for (name, bytes) in &envelopes {
        signing::verify_dsse(key, bytes).map_err(|why| {
            StepError::new(format!(
                "refusing to promote {}@{digest}: {name}: {why}",
                from.name()
            ))
        })?;
    }
    ctx.info(&format!(
        "{} attestations of {}@{digest} verify with key `{key}`",
        envelopes.len(),
        from.name()
    ));
    let options = flow_oci::PromoteOptions {
        overwrite: params.overwrite,
        skip_referrers: false,
    };
    let promoted = client.promote(&from, to, &options)?;
    let outcome = match promoted.published.outcome {
        flow_oci::Outcome::Created => "created",
        flow_oci::Outcome::Unchanged => "unchanged",
        flow_oci::Outcome::Replaced { .. } => "replaced",
    };
    ctx.info(&format!(
        "{outcome} {} ({} referrers copied)",
        promoted.published.reference,
        promoted.referrers.len()
    ));
    ctx.set_output("digest", &promoted.published.digest().to_string());
    ctx.set_output("reference", &promoted.published.reference);
    ctx.set_output("outcome", outcome);
    provenance::add_dependency(
        &format!("{}@{digest}", from.name()),
        Some("promoted"),
        &[("sha256", &digest.hex())],
    );
    Ok(())
}

export_plugin!(Publish);
