//! CPU-bound work off the async reactor: ranking, index builds and training run on the rayon
//! pool, and request tasks await them without blocking a tokio worker.

use crate::error::EngineError;

/// Runs `f` on the rayon pool and awaits its result. A panic inside `f` is caught here and
/// surfaces as an internal error: rayon's default for a panicking `spawn` is to abort the
/// process, which would take every other request down with one bad one.
pub async fn on_rayon<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, EngineError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        if let Ok(value) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            let _ = tx.send(value);
        }
    });
    rx.await
        .map_err(|_| EngineError::Internal("a ranking task panicked".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_an_error_not_an_abort() {
        assert_eq!(on_rayon(|| 6 * 7).await.unwrap(), 42);
        let failed = on_rayon(|| -> u32 { panic!("bad input") }).await;
        assert!(
            matches!(failed, Err(EngineError::Internal(_))),
            "{failed:?}"
        );
        // The pool still serves work after the panic.
        assert_eq!(on_rayon(|| 1).await.unwrap(), 1);
    }
}
