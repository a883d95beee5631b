/**
 * Worker-thread side of `RolloutWorkers` (rollout-workers.ts): starts its own wasm backend (with the native
 * kernels where they load), builds the emulator from its spec (worker-models.ts), copies the weights from the
 * shared buffer once, then rolls out its range of ensemble members window by window: `start` opens a rollout
 * and answers with its first window, `next` with the following one, `end` closes it. Holds the open rollout
 * (its context tensor) between requests, and one window's states while sending them.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { selectBackend } from './backend/select.js';
import { assignWeights, checkLayout } from './train/parallel.js';
import { buildRolloutEmulator } from './worker-models.js';
import { rollout, type RolloutState } from './diffusion/rollout.js';
import type { FromRolloutWorker, RolloutWorkerInit, ToRolloutWorker } from './rollout-workers.js';

if (!parentPort) throw new Error('rollout-worker must run in a worker thread');
const port = parentPort;
const init = workerData as RolloutWorkerInit;
const send = (msg: FromRolloutWorker, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

async function main(): Promise<void> {
  await selectBackend({ prefer: 'wasm' });
  const built = buildRolloutEmulator(init.spec);
  checkLayout(init.layout, built.params, `the emulator spec of ${init.what}`);
  assignWeights(init.layout, new Float32Array(init.weights), built.params);
  send({ type: 'ready' });

  let open: { it: AsyncIterator<RolloutState>; perWindow: number; horizon: number; lead: number } | undefined;
  const close = async () => {
    const it = open?.it;
    open = undefined;
    await it?.return?.();
  };
  /** Pulls the states of the next window (those leads the rollout computes in one emulator call). */
  const nextWindow = async (): Promise<void> => {
    if (!open) throw new Error('no rollout open (next before start)');
    const count = Math.min(open.perWindow, open.horizon - open.lead);
    const states: Float32Array[] = [];
    for (let k = 0; k < count; k++) {
      const r = await open.it.next();
      if (r.done) throw new Error(`the rollout ended at lead ${open.lead}, before its horizon ${open.horizon}`);
      states.push(r.value.states);
      open.lead++;
    }
    const size = states[0]?.length ?? 0;
    const out = new Float32Array(count * size);
    states.forEach((s, k) => out.set(s, k * size));
    send({ type: 'window', leads: count, states: out }, [out.buffer as ArrayBuffer]);
  };

  port.on('message', async (msg: ToRolloutWorker) => {
    try {
      if (msg.type === 'start') {
        await close();
        const { options } = msg;
        open = {
          it: rollout(built.emulator, msg.start, options)[Symbol.asyncIterator](),
          perWindow: (options.window ?? 5) - (options.context ?? 1),
          horizon: options.horizon,
          lead: 0,
        };
        await nextWindow();
      } else if (msg.type === 'next') {
        await nextWindow();
      } else {
        await close();
        send({ type: 'ended' });
      }
    } catch (err) {
      await close().catch(() => undefined);
      send({ type: 'error', message: (err as Error).stack ?? String(err) });
    }
  });
}

main().catch((err: Error) => send({ type: 'error', message: err.stack ?? String(err) }));
