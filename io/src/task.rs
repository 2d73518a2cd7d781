//! Blocking work (sled, file hashing, fsync) run off the async threads, with
//! the task's failure folded into the caller's own error type: one helper for
//! central, relays and agents.

/// Runs `f` on tokio's blocking pool and waits for it. A panic or cancellation
/// of the task becomes `E` through its `From<JoinError>`.
pub async fn blocking<R, E>(f: impl FnOnce() -> Result<R, E> + Send + 'static) -> Result<R, E>
where
    R: Send + 'static,
    E: From<tokio::task::JoinError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug)]
    enum Failed {
        Said(&'static str),
        Task,
    }

    impl From<tokio::task::JoinError> for Failed {
        fn from(_: tokio::task::JoinError) -> Self {
            Failed::Task
        }
    }

    #[tokio::test]
    async fn answers_errors_and_panics_reach_the_caller() {
        assert_eq!(blocking(|| Ok::<_, Failed>(7)).await.unwrap(), 7);
        let said = blocking(|| Err::<(), _>(Failed::Said("no"))).await;
        assert!(matches!(said, Err(Failed::Said("no"))));
        let panicked = blocking(|| -> Result<(), Failed> { panic!("boom") }).await;
        assert!(matches!(panicked, Err(Failed::Task)));
    }
}
