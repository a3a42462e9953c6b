/**
 * The mark phase (containerd's gc.Tricolor): every node reachable from the
 * roots through `refs`. Depth first, so that a reference that comes back to a
 * node on the current path is seen: each such cycle is told to `onCycle` once
 * (cycles are harmless to the mark; they are reported because a label that
 * makes one is a mistake worth knowing about).
 */

/** The reachable set of `roots` through `refs`; `onCycle` gets each cycle met, as its path (first node repeated last). */
export function mark<N extends string>(
  roots: Iterable<N>,
  refs: (node: N) => Iterable<N>,
  onCycle?: (path: N[]) => void,
): Set<N> {
  const done = new Set<N>();
  const onPath = new Set<N>();
  for (const root of roots) {
    if (done.has(root)) continue;
    const stack: { node: N; next: Iterator<N> }[] = [{ node: root, next: refs(root)[Symbol.iterator]() }];
    onPath.add(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const step = top.next.next();
      if (step.done) {
        stack.pop();
        onPath.delete(top.node);
        done.add(top.node);
        continue;
      }
      const child = step.value;
      if (done.has(child)) continue;
      if (onPath.has(child)) {
        const from = stack.findIndex((f) => f.node === child);
        onCycle?.([...stack.slice(from).map((f) => f.node), child]);
        continue;
      }
      onPath.add(child);
      stack.push({ node: child, next: refs(child)[Symbol.iterator]() });
    }
  }
  return done;
}
