/**
 * The stage core: every part of wellspring that moves data is a `Stage`, a plain function from one async
 * iterable to another. Stages are lazy and pull-based: nothing runs until a consumer pulls, and a stage pulls
 * from its source only as fast as it is pulled (plus whatever run-ahead bound it declares), which is what gives
 * pipelines their backpressure. Breaking out of a `for await` calls `return()` down the chain, so every
 * upstream `finally` runs.
 */

/** A transform from one async stream to another. */
export type Stage<A, B> = (source: AsyncIterable<A>) => AsyncIterable<B>;

/** Anything a pipeline can start from. */
export type Source<A> = AsyncIterable<A> | Iterable<A>;

/**
 * The error a consumer sees when a stage fails: it names the stage (`stage "batch" failed: ...`) and keeps the
 * original error as `cause`. An error that already passed through a named stage is not wrapped again, so the
 * name is always that of the stage where it started.
 */
export class StageError extends Error {
  override readonly name = 'StageError';
  constructor(
    readonly stage: string,
    override readonly cause: unknown,
  ) {
    super(`stage "${stage}" failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** Lifts a sync or async iterable into an async iterable (identity for async iterables). */
export function from<A>(source: Source<A>): AsyncIterable<A> {
  if (Symbol.asyncIterator in source) return source;
  return (async function* () {
    yield* source;
  })();
}

/**
 * Wraps a stage body so that its errors carry its name. Errors raised by the stage's source are tagged with
 * the name `source` unless an upstream stage already named them, so blame lands where the error started.
 */
export function named<A, B>(name: string, body: Stage<A, B>): Stage<A, B> {
  return (source) => ({
    async *[Symbol.asyncIterator]() {
      try {
        yield* body(blameUpstream(source));
      } catch (err) {
        throw err instanceof StageError ? err : new StageError(name, err);
      }
    },
  });
}

/** Errors raised while pulling from `source` become StageErrors of the source (if not named already). */
function blameUpstream<A>(source: AsyncIterable<A>): AsyncIterable<A> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      const tag = (err: unknown): never => {
        throw err instanceof StageError ? err : new StageError('source', err);
      };
      return {
        next: () => it.next().catch(tag),
        return: (value?: unknown) =>
          it.return ? it.return(value).catch(tag) : Promise.resolve({ done: true as const, value: undefined }),
      } as AsyncIterator<A>;
    },
  };
}

/** Composes stages left to right into one stage. */
export function compose<A, B>(s1: Stage<A, B>): Stage<A, B>;
export function compose<A, B, C>(s1: Stage<A, B>, s2: Stage<B, C>): Stage<A, C>;
export function compose<A, B, C, D>(s1: Stage<A, B>, s2: Stage<B, C>, s3: Stage<C, D>): Stage<A, D>;
export function compose<A, B, C, D, E>(
  s1: Stage<A, B>,
  s2: Stage<B, C>,
  s3: Stage<C, D>,
  s4: Stage<D, E>,
): Stage<A, E>;
export function compose<A, B, C, D, E, F>(
  s1: Stage<A, B>,
  s2: Stage<B, C>,
  s3: Stage<C, D>,
  s4: Stage<D, E>,
  s5: Stage<E, F>,
): Stage<A, F>;
export function compose(...stages: Stage<unknown, unknown>[]): Stage<unknown, unknown>;
export function compose(...stages: Stage<unknown, unknown>[]): Stage<unknown, unknown> {
  return (source) => stages.reduce((acc, stage) => stage(acc), source);
}

/**
 * Pipes a source through stages, left to right: `pipe(source, map(f), batch(8))`. The result is lazy: it is an
 * async iterable that does nothing until iterated (by `for await` or a sink such as `collect`).
 */
export function pipe<A>(source: Source<A>): AsyncIterable<A>;
export function pipe<A, B>(source: Source<A>, s1: Stage<A, B>): AsyncIterable<B>;
export function pipe<A, B, C>(source: Source<A>, s1: Stage<A, B>, s2: Stage<B, C>): AsyncIterable<C>;
export function pipe<A, B, C, D>(
  source: Source<A>,
  s1: Stage<A, B>,
  s2: Stage<B, C>,
  s3: Stage<C, D>,
): AsyncIterable<D>;
export function pipe<A, B, C, D, E>(
  source: Source<A>,
  s1: Stage<A, B>,
  s2: Stage<B, C>,
  s3: Stage<C, D>,
  s4: Stage<D, E>,
): AsyncIterable<E>;
export function pipe<A, B, C, D, E, F>(
  source: Source<A>,
  s1: Stage<A, B>,
  s2: Stage<B, C>,
  s3: Stage<C, D>,
  s4: Stage<D, E>,
  s5: Stage<E, F>,
): AsyncIterable<F>;
export function pipe<A, B, C, D, E, F, G>(
  source: Source<A>,
  s1: Stage<A, B>,
  s2: Stage<B, C>,
  s3: Stage<C, D>,
  s4: Stage<D, E>,
  s5: Stage<E, F>,
  s6: Stage<F, G>,
): AsyncIterable<G>;
export function pipe<A, B, C, D, E, F, G, H>(
  source: Source<A>,
  s1: Stage<A, B>,
  s2: Stage<B, C>,
  s3: Stage<C, D>,
  s4: Stage<D, E>,
  s5: Stage<E, F>,
  s6: Stage<F, G>,
  s7: Stage<G, H>,
): AsyncIterable<H>;
export function pipe<A, B, C, D, E, F, G, H, I>(
  source: Source<A>,
  s1: Stage<A, B>,
  s2: Stage<B, C>,
  s3: Stage<C, D>,
  s4: Stage<D, E>,
  s5: Stage<E, F>,
  s6: Stage<F, G>,
  s7: Stage<G, H>,
  s8: Stage<H, I>,
): AsyncIterable<I>;
export function pipe(source: Source<unknown>, ...stages: Stage<unknown, unknown>[]): AsyncIterable<unknown>;
export function pipe(source: Source<unknown>, ...stages: Stage<unknown, unknown>[]): AsyncIterable<unknown> {
  return compose(...stages)(from(source));
}

/**
 * Resolves a module that sits next to the caller, keeping the caller's extension: `.ts` when running from
 * source (tests, tsx), `.js` when running compiled code. Used for worker-thread entry points.
 */
export function siblingModule(callerUrl: string, name: string): URL {
  const ext = callerUrl.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./${name}${ext}`, callerUrl);
}
