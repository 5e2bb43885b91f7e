//! Work over a long slice on every core, with a result that does not depend on how many there
//! are: the slice is cut into parts of a size the caller fixes, each part's result is computed on
//! some thread, and the results come back in the parts' order. No IO, no clock: a plan computed
//! on one node and checked on another (two nodes, one PostgreSQL state) gets the same id.

/// `f` of each part of `items` cut into parts of `per` items, in the parts' order, on the
/// machine's cores (each thread a run of consecutive parts); on this thread where a thread
/// cannot be started (a process limit). A panic in `f` is raised here.
pub fn map_parts<T: Sync, R: Send>(items: &[T], per: usize, f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let parts: Vec<&[T]> = items.chunks(per.max(1)).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(parts.len());
    if threads <= 1 {
        return parts.into_iter().map(f).collect();
    }
    let f = &f;
    let run = move |runs: &[&[T]]| -> Vec<R> { runs.iter().map(|p| f(p)).collect() };
    let runs: Vec<&[&[T]]> = parts.chunks(parts.len().div_ceil(threads)).collect();
    std::thread::scope(|scope| {
        let started: Vec<_> = runs
            .iter()
            .map(|&r| std::thread::Builder::new().spawn_scoped(scope, move || run(r)).map_err(|_| r))
            .collect();
        started
            .into_iter()
            .flat_map(|s| match s {
                Ok(thread) => thread.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Err(r) => run(r),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_results_come_in_the_order_of_the_parts_whatever_the_sizes() {
        let items: Vec<u32> = (0..1001).collect();
        for per in [1, 7, 100, 1000, 5000] {
            let sums = map_parts(&items, per, |p| p.iter().map(|&i| u64::from(i)).sum::<u64>());
            let expected: Vec<u64> = items.chunks(per).map(|p| p.iter().map(|&i| u64::from(i)).sum()).collect();
            assert_eq!(sums, expected, "parts of {per}");
        }
        assert!(map_parts(&[] as &[u32], 10, |p| p.len()).is_empty());
        assert_eq!(map_parts(&items, 0, |p| p.len()).len(), 1001, "a part of none is a part of one");
    }
}
