//! The harness itself: every other test here runs twice, once per backend
//! ([`c24_e2e::both!`]); this checks that each half really is on the
//! backend it names, so a PostgreSQL half can never pass on SQLite.

use c24_e2e::Core;
use c24_e2e::backend::{Backend, current};
use c24_e2e::inspect::{Arg, Inspector, Part};

c24_e2e::both! {
async fn each_half_runs_on_the_backend_it_names() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("Where", true).await?;
    let sqlite_file = core.data_dir().join("c24.sqlite");
    match current() {
        Backend::Sqlite => {
            assert!(core.database_url().is_none());
            assert!(sqlite_file.exists());
        }
        Backend::Postgres(_) => {
            let url = core.database_url();
            assert!(url.as_deref().is_some_and(|u| u.starts_with("postgres")), "{url:?}");
            assert!(!sqlite_file.exists(), "a PostgreSQL core made {sqlite_file:?}");
            assert!(matches!(
                Inspector::open(&core, Part::Data).await?,
                Inspector::Postgres(_)
            ));
        }
    }
    // Either way the tenant is in the store the inspector reads.
    let db = Inspector::open(&core, Part::Data).await?;
    let n = db
        .count("SELECT count(*) FROM tenants WHERE id = ?1", &[Arg::Text(&t.id)])
        .await?;
    assert_eq!(n, 1);
    // A restart on the same data dir finds the same store.
    let dir = core.stop().await;
    let core = Core::start_in(dir, |_| {}).await?;
    assert_eq!(core.admin.tenant(&t.id).await?.name, "Where");
    Ok(())
}
}
