import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { SeededRandom } from '../../src/streams/random.js';
import {
  ParameterScope,
  contextMask,
  countParameters,
  createDcae,
  createLinear,
  disposeParameters,
  dropout,
  normalInit,
} from '../../src/models/nn/index.js';
import { useBackend } from './helpers.js';

await useBackend();

t.test('scopes build dotted names, reject duplicates, count and free parameters', async (t) => {
  const root = ParameterScope.root(1, 'net');
  createLinear(root.child('blocks').child(0).child('fc'), 3, 4);
  createLinear(root.child('blocks').child(1).child('fc'), 4, 2, { bias: false });
  t.same([...root.params.keys()], ['net.blocks.0.fc.weight', 'net.blocks.0.fc.bias', 'net.blocks.1.fc.weight']);
  t.equal(countParameters(root.params), 3 * 4 + 4 + 4 * 2);
  t.equal(countParameters(root.params, 'net.blocks.1.'), 8);
  t.throws(() => root.child('blocks').child(0).child('fc').create('weight', [1], normalInit(1)), /parameter "net.blocks.0.fc.weight" created twice/);
  const before = tf.memory().numTensors;
  // two networks with identical names coexist (tfjs variable names are not used)
  const a = createDcae({ inChannels: 1, latentChannels: 1, channels: [2], blocks: 1 });
  const b = createDcae({ inChannels: 1, latentChannels: 1, channels: [2], blocks: 1 });
  t.same([...a.params.keys()], [...b.params.keys()]);
  a.dispose();
  b.dispose();
  t.equal(a.params.size, 0, 'dispose empties the map');
  disposeParameters(root.params);
  t.equal(tf.memory().numTensors, before - 3, 'every variable freed');
});

t.test('seeded generator: reproducible, uniform in [0, 1), standard normals', async (t) => {
  const a = new SeededRandom(42);
  const b = new SeededRandom(42);
  const xs = Array.from({ length: 20000 }, () => a.uniform());
  t.same(xs.slice(0, 100), Array.from({ length: 100 }, () => b.uniform()), 'same seed, same stream');
  t.ok(xs.every((x) => x >= 0 && x < 1), 'in [0, 1)');
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  t.ok(Math.abs(mean - 0.5) < 0.01, `uniform mean ${mean.toFixed(4)}`);
  const ns = Array.from({ length: 20000 }, () => a.normal());
  const m = ns.reduce((s, x) => s + x, 0) / ns.length;
  const v = ns.reduce((s, x) => s + (x - m) ** 2, 0) / ns.length;
  t.ok(Math.abs(m) < 0.03 && Math.abs(v - 1) < 0.04, `normal mean ${m.toFixed(4)} variance ${v.toFixed(4)}`);
});

t.test('dropout: identity at inference, seeded and rescaled in training', async (t) => {
  const x = tf.ones([1000]);
  t.equal(dropout(x, 0.5), x, 'inference returns the input');
  const make = () => {
    let s = 5;
    return () => ((s = (s * 48271) % 2147483647) / 2147483647);
  };
  const y1 = dropout(x, 0.25, { training: true, random: make() }).dataSync();
  const y2 = dropout(x, 0.25, { training: true, random: make() }).dataSync();
  t.same(y1, y2, 'same random source, same mask');
  const kept = y1.filter((v) => v !== 0);
  t.ok(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6), 'kept values rescaled by 1 / (1 - rate)');
  t.ok(Math.abs(kept.length / 1000 - 0.75) < 0.05, `keep fraction ${kept.length / 1000}`);
});

t.test('context masks', async (t) => {
  const m = contextMask([2, 4, 1, 1, 2], [1, 3]);
  t.same(m.reshape([2, 4, 2]).arraySync(), [
    [[1, 1], [0, 0], [0, 0], [0, 0]],
    [[1, 1], [1, 1], [1, 1], [0, 0]],
  ]);
  t.throws(() => contextMask([2, 4, 1, 1, 2], [1]), /1 observed counts for a batch of 2/);
  t.throws(() => contextMask([1, 4, 1, 1, 2], 5), /observed frames must be in \[0, 4\], got 5/);
});
