/**
 * Autoregressive rollouts: from initial context frames and labels, an emulator predicts a window of L states,
 * the last `context` predicted states become the next call's context, and so on. States are yielded one by one
 * as soon as their window is generated, and the next window is only computed when the consumer pulls past the
 * current one. An ensemble of M members runs batched in one call per window. Memory is bounded by the window:
 * only the context tensor persists between calls, whatever the horizon.
 *
 * Each member has its own noise stream, `ensembleMemberSeed(seed, member)` (src/streams/random.ts), from which
 * every window draws that member's seed: member m's states depend only on the start, the seed and m, not on the
 * members batched with it. So an ensemble split into member ranges (`firstMember`, as the worker threads of
 * src/models/rollout-workers.ts split it) gives the same members as one batched rollout.
 *
 * Guided rollouts (data assimilation): with `guidance`, observations of the physical states arrive as an async
 * iterable keyed by lead time (any subset of leads, in increasing order). Before each window the rollout pulls
 * the observations of the leads it covers (and the next one, which tells it they are complete and which it keeps
 * for a later window: a live source is waited for), and samples that
 * window with the guided denoiser (guidance.ts) on the likelihood of those observations through the decoder; a
 * window without observations is sampled as in a plain rollout, with the same seed, so a rollout without
 * observations is the plain one. Memory: the observations of one window plus the one held back.
 */
import * as tf from '@tensorflow/tfjs';
import type { DiffusionEmulator, Emulator } from './emulator.js';
import { windowLikelihood, type Guidance, type LatentDecoder } from './guidance.js';
import type { ObservationOperator } from '../../physics/observe.js';
import { Rng, ensembleMemberSeed } from '../../streams/random.js';
import { tensorSeed } from './random.js';

/** Where a rollout starts. */
export interface RolloutStart {
  /** Initial states (K, H, W, C) with K >= context; the last `context` are used. */
  states: Float32Array;
  shape: readonly [number, number, number, number];
  /** Simulation parameters (P), or null. */
  labels: Float32Array | null;
  /** An identifier passed through to the yielded states (trajectory name...). */
  id?: string | number;
}

export interface RolloutOptions {
  /** Number of states to generate. */
  horizon: number;
  /** States per emulator call (default 5; must match the emulator's training windows). */
  window?: number;
  /** States carried over between calls as context (default 1). */
  context?: number;
  /** Ensemble members, batched together (default 1). */
  ensemble?: number;
  /** Seed of the rollout (default 0): the same seed gives the same states. */
  seed?: number;
  /**
   * Index of this rollout's first member in a larger ensemble (default 0): member i draws its noise from
   * `ensembleMemberSeed(seed, firstMember + i)`, so members [a, b) of an ensemble can be rolled out apart.
   */
  firstMember?: number;
  /** Condition the windows on streamed observations (diffusion emulators only); see the file header. */
  guidance?: RolloutGuidance;
}

/** An observation of the physical state at one lead time. */
export interface LeadObservation {
  /** Lead time, 1..horizon. */
  lead: number;
  /** operator.size values, in the operator's output layout (`outShape`). */
  values: Float32Array;
  /** The observed fields, when the source states them: checked against the operator's. */
  fields?: readonly string[];
}

export interface RolloutGuidance {
  /** DPS or MMPS (guidance.ts). */
  guidance: Guidance;
  /** What the observations see of a physical state (src/physics/observe.ts). */
  operator: ObservationOperator;
  /** Latent states to physical states, differentiable (e.g. `physicalDecoder(ae)`). */
  decoder: LatentDecoder;
  /** Observations in increasing lead order; pulled as the rollout advances, closed when it ends. */
  observations: AsyncIterable<LeadObservation>;
}

export interface RolloutState {
  /** Lead time: 1 for the first state after the initial context. */
  lead: number;
  /** The members' states (M, H, W, C). */
  states: Float32Array;
  shape: readonly [number, number, number, number];
  id?: string | number;
}

function checkOptions(options: RolloutOptions): Required<Omit<RolloutOptions, 'guidance'>> {
  const { horizon, window = 5, context = 1, ensemble = 1, seed = 0, firstMember = 0 } = options;
  const positive = (name: string, v: number, min = 1) => {
    if (!Number.isInteger(v) || v < min) throw new Error(`rollout: ${name} must be an integer >= ${min}, got ${v}`);
  };
  positive('horizon', horizon, 0);
  positive('window', window, 2);
  positive('context', context);
  positive('ensemble', ensemble);
  positive('firstMember', firstMember, 0);
  if (context >= window) throw new Error(`rollout: context (${context}) must be smaller than the window (${window})`);
  return { horizon, window, context, ensemble, seed, firstMember };
}

/**
 * Rolls one trajectory out for `horizon` states (a source: nothing runs until pulled). Holds the context
 * (M, context, H, W, C) between calls and one window while yielding its states.
 */
export function rollout(emulator: Emulator, start: RolloutStart, options: RolloutOptions): AsyncIterable<RolloutState> {
  const { horizon, window, context, ensemble, seed, firstMember } = checkOptions(options);
  const [K, H, W, C] = start.shape;
  const frame = H * W * C;
  if (start.states.length !== K * frame) {
    throw new Error(`rollout${start.id === undefined ? '' : ` ${start.id}`}: states has ${start.states.length} values, expected ${K * frame} for shape [${start.shape}]`);
  }
  if (K < context) throw new Error(`rollout: ${K} initial states given, context needs ${context}`);
  const where = `rollout${start.id === undefined ? '' : ` ${start.id}`}`;
  const guided = options.guidance;
  if (guided && !('predictGuided' in emulator)) {
    throw new Error(`${where}: guidance (${guided.guidance.name}) needs a diffusion or flow emulator, which samples with a denoiser; this emulator is a ${emulator.kind}, which does not`);
  }
  return {
    async *[Symbol.asyncIterator]() {
      const members = Array.from({ length: ensemble }, (_, m) => new Rng(ensembleMemberSeed(seed, firstMember + m)));
      const queue = guided ? new ObservationQueue(guided, horizon, where) : undefined;
      const initial = start.states.subarray((K - context) * frame);
      // Every member starts from the same context; members differ through the sampler's noise.
      let ctx = tf.tidy(() => tf.tile(tf.tensor5d(initial, [1, context, H, W, C]), [ensemble, 1, 1, 1, 1])) as tf.Tensor5D;
      const mask = tf.tensor2d(
        Array.from({ length: ensemble * window }, (_, i) => (i % window < context ? 1 : 0)),
        [ensemble, window],
      );
      const labels = start.labels
        ? tf.tidy(() => tf.tile(tf.tensor2d(start.labels!, [1, start.labels!.length]), [ensemble, 1]) as tf.Tensor2D)
        : null;
      try {
        let lead = 0;
        while (lead < horizon) {
          const observed = tf.tidy(() => tf.concat([ctx, tf.zeros([ensemble, window - context, H, W, C])], 1)) as tf.Tensor5D;
          let predicted: tf.Tensor5D;
          try {
            const seedOf = members.map(tensorSeed);
            const last = Math.min(lead + window - context, horizon);
            const seen = queue ? await queue.upTo(last) : [];
            if (seen.length === 0) {
              predicted = emulator.predict({ observed, mask, labels }, seedOf);
            } else {
              const size = guided!.operator.size;
              const values = new Float32Array(seen.length * size);
              seen.forEach((o, i) => values.set(o.values, i * size));
              const likelihood = windowLikelihood(guided!.decoder, guided!.operator, { frames: seen.map((o) => o.lead - lead - 1 + context), values });
              try {
                predicted = (emulator as DiffusionEmulator).predictGuided({ observed, mask, labels }, seedOf, (d, schedule) =>
                  guided!.guidance.guide(d, schedule, likelihood),
                );
              } finally {
                likelihood.dispose();
              }
            }
          } finally {
            observed.dispose();
          }
          let values: Float32Array;
          try {
            values = (await predicted.data()) as Float32Array;
            const next = tf.slice(predicted, [0, window - context], [ensemble, context]) as tf.Tensor5D;
            ctx.dispose();
            ctx = next;
          } finally {
            predicted.dispose();
          }
          for (let f = context; f < window && lead < horizon; f++) {
            const states = new Float32Array(ensemble * frame);
            for (let m = 0; m < ensemble; m++) {
              states.set(values.subarray((m * window + f) * frame, (m * window + f + 1) * frame), m * frame);
            }
            lead++;
            yield { lead, states, shape: [ensemble, H, W, C] as const, id: start.id };
          }
        }
      } finally {
        tf.dispose([ctx, mask]);
        if (labels) labels.dispose();
        await queue?.close();
      }
    },
  };
}

/**
 * Pulls observations lead by lead: `upTo(lead)` returns those up to `lead`, keeping the first later one for the
 * next call. Checks each against the operator and the rollout's leads.
 */
class ObservationQueue {
  private readonly it: AsyncIterator<LeadObservation>;
  private pending: LeadObservation | undefined;
  private done = false;
  private last = 0;

  constructor(
    private readonly guided: RolloutGuidance,
    private readonly horizon: number,
    private readonly where: string,
  ) {
    this.it = guided.observations[Symbol.asyncIterator]();
  }

  private check(o: LeadObservation): LeadObservation {
    const { operator } = this.guided;
    const at = `${this.where}: observation at lead ${o.lead}`;
    if (!Number.isInteger(o.lead) || o.lead < 1 || o.lead > this.horizon) {
      throw new Error(`${at}: outside the rollout's leads 1..${this.horizon}`);
    }
    if (o.lead <= this.last) throw new Error(`${at}: observations must come in increasing lead order (the previous one was at lead ${this.last})`);
    if (o.fields && o.fields.join() !== operator.fields.join()) {
      throw new Error(`${at}: fields [${o.fields}], the operator ${operator.name} observes [${operator.fields}]`);
    }
    if (o.values.length !== operator.size) {
      throw new Error(`${at}: ${o.values.length} values, the operator ${operator.name} yields ${operator.size} per state (shape [${operator.outShape}])`);
    }
    this.last = o.lead;
    return o;
  }

  private async next(): Promise<LeadObservation | undefined> {
    if (this.pending) return this.pending;
    if (this.done) return undefined;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return undefined;
    }
    this.pending = this.check(r.value);
    return this.pending;
  }

  /** The observations at leads <= `lead` not returned before. */
  async upTo(lead: number): Promise<LeadObservation[]> {
    const out: LeadObservation[] = [];
    for (let o = await this.next(); o && o.lead <= lead; o = await this.next()) {
      out.push(o);
      this.pending = undefined;
    }
    return out;
  }

  async close(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.it.return?.();
    }
  }
}
