//! The Rollout verbs: `list`, `status`, `promote`, `abort`, `retry`, `pause`,
//! `resume`, `restart`, `undo`, `set image`. Shared by `redblack VERB` and the kubectl plugin
//! (`kubectl redblack VERB`). Each verb is an async function returning the text
//! to print, so tests call them in-process against the sandbox.

use std::path::PathBuf;

use clap::Subcommand;
use kube::Client;

mod ops;
mod set_image;
mod show;

pub use ops::{abort, pause, promote, restart, resume, retry, undo};
pub use set_image::{parse_images, set_image};
pub use show::{list, render_status, status, watch_status};

use super::CliResult;

/// Where to find the cluster and which namespace to use.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Conn {
    /// Namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// The Rollout's name.
    pub name: String,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    pub name: String,
    /// Keep printing the tree as it changes (Ctrl+C stops).
    #[arg(short = 'w', long)]
    pub watch: bool,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, clap::Args)]
pub struct UndoArgs {
    pub name: String,
    /// The revision to go back to (default: the previous one).
    #[arg(long)]
    pub to_revision: Option<i64>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, clap::Args)]
pub struct SetArgs {
    #[command(subcommand)]
    pub what: SetCommand,
}

#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Set container images (a new revision): `set image NAME CONTAINER=IMAGE...`,
    /// a server-side apply of only those images.
    Image(SetImageArgs),
}

#[derive(Debug, clap::Args)]
pub struct SetImageArgs {
    /// The Rollout's name.
    pub name: String,
    /// `CONTAINER=IMAGE`, one or more (containers or initContainers); `*=IMAGE`
    /// sets every container.
    #[arg(required = true, value_name = "CONTAINER=IMAGE")]
    pub images: Vec<String>,
    #[command(flatten)]
    pub conn: Conn,
}

/// The verbs, flattened into `redblack`'s commands and the kubectl plugin's.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// List Rollouts with their phase and revisions.
    List(ListArgs),
    /// Show a Rollout as a tree: revisions, fleets, Services, conditions, events.
    Status(StatusArgs),
    /// Approve the current revision: traffic switches once its fleet is available.
    Promote(NameArgs),
    /// Abandon the current, not yet live revision; traffic stays on stable.
    Abort(NameArgs),
    /// Retry an aborted revision (or one that missed its progress deadline).
    Retry(NameArgs),
    /// Set spec.paused: no new fleet is brought up and traffic is not switched.
    Pause(NameArgs),
    /// Clear spec.paused.
    Resume(NameArgs),
    /// Recreate the live fleet's pods one at a time (sets spec.restartAt).
    Restart(NameArgs),
    /// Go back to a previous revision (lands on its fleet; instant while it is warm).
    Undo(UndoArgs),
    /// Change the spec: `set image NAME CONTAINER=IMAGE...` (Argo Rollouts' verb).
    Set(SetArgs),
    /// Serve the web dashboard (fleet, Rollout, canary report pages; live) on 127.0.0.1.
    Dashboard(crate::cli::dashboard::DashboardArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum VerbError {
    #[error(transparent)]
    Connect(#[from] crate::runtime::client::ClientError),
    #[error("Rollout {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("{what}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "Rollout {0} has no status.currentRevision yet: the operator has not processed it (is `redblack controller` running?)"
    )]
    NotObserved(String),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Undo(#[from] crate::rollout::undo::UndoError),
    #[error("Rollout {0} kept changing while undoing; try again")]
    Conflict(String),
}

/// A client and namespace from `--kubeconfig`/`-n`, like kubectl.
pub async fn connect(conn: &Conn) -> Result<(Client, String), VerbError> {
    Ok(
        crate::runtime::client::connect(conn.kubeconfig.as_deref(), conn.namespace.as_deref())
            .await?,
    )
}

pub async fn run(command: RolloutCommand) -> CliResult {
    let out = match command {
        RolloutCommand::List(a) => {
            let (c, ns) = connect(&a.conn).await?;
            list(&c, &ns).await?
        }
        RolloutCommand::Status(a) => {
            let (c, ns) = connect(&a.conn).await?;
            if a.watch {
                watch_status(&c, &ns, &a.name).await?;
                return Ok(());
            }
            status(&c, &ns, &a.name).await?
        }
        RolloutCommand::Promote(a) => {
            let (c, ns) = connect(&a.conn).await?;
            promote(&c, &ns, &a.name).await?
        }
        RolloutCommand::Abort(a) => {
            let (c, ns) = connect(&a.conn).await?;
            abort(&c, &ns, &a.name).await?
        }
        RolloutCommand::Retry(a) => {
            let (c, ns) = connect(&a.conn).await?;
            retry(&c, &ns, &a.name).await?
        }
        RolloutCommand::Pause(a) => {
            let (c, ns) = connect(&a.conn).await?;
            pause(&c, &ns, &a.name).await?
        }
        RolloutCommand::Resume(a) => {
            let (c, ns) = connect(&a.conn).await?;
            resume(&c, &ns, &a.name).await?
        }
        RolloutCommand::Restart(a) => {
            let (c, ns) = connect(&a.conn).await?;
            restart(&c, &ns, &a.name).await?
        }
        RolloutCommand::Undo(a) => {
            let (c, ns) = connect(&a.conn).await?;
            undo(&c, &ns, &a.name, a.to_revision).await?
        }
        RolloutCommand::Dashboard(a) => return crate::cli::dashboard::run(a).await,
        RolloutCommand::Set(SetArgs {
            what: SetCommand::Image(a),
        }) => {
            let (c, ns) = connect(&a.conn).await?;
            set_image(&c, &ns, &a.name, &a.images).await?
        }
    };
    print!("{out}");
    if !out.ends_with('\n') {
        println!();
    }
    Ok(())
}

/// Maps a 404 on the Rollout to a readable error.
pub(crate) fn rollout_err(
    namespace: &str,
    name: &str,
    what: &str,
) -> impl Fn(kube::Error) -> VerbError {
    let (namespace, name, what) = (namespace.to_owned(), name.to_owned(), what.to_owned());
    move |source| match &source {
        kube::Error::Api(s) if s.code == 404 => VerbError::NotFound {
            namespace: namespace.clone(),
            name: name.clone(),
        },
        _ => VerbError::Api {
            what: format!("{what} Rollout {namespace}/{name}"),
            source,
        },
    }
}
