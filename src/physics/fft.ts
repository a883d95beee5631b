/**
 * In-place radix-2 complex FFT on split real/imaginary Float64Arrays, with twiddles and the bit-reversal
 * permutation precomputed once per size; plus real-row transforms that pack two real rows into one complex FFT.
 */

export class FFT {
  readonly n: number;
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;
  private readonly rev: Uint32Array;

  constructor(n: number) {
    if (!Number.isInteger(n) || n < 2 || (n & (n - 1)) !== 0)
      throw new RangeError(`FFT: size must be a power of two >= 2, got ${n}`);
    this.n = n;
    this.cos = new Float64Array(n / 2);
    this.sin = new Float64Array(n / 2);
    for (let k = 0; k < n / 2; k++) {
      this.cos[k] = Math.cos((2 * Math.PI * k) / n);
      this.sin[k] = Math.sin((2 * Math.PI * k) / n);
    }
    this.rev = new Uint32Array(n);
    const bits = Math.log2(n);
    for (let i = 0; i < n; i++) {
      let r = 0;
      for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
      this.rev[i] = r;
    }
  }

  /** Forward transform (sign -1), unnormalised. */
  forward(re: Float64Array, im: Float64Array): void {
    this.run(re, im, -1);
  }

  /** Inverse transform (sign +1), normalised by 1/n. */
  inverse(re: Float64Array, im: Float64Array): void {
    this.run(re, im, 1);
    const s = 1 / this.n;
    for (let i = 0; i < this.n; i++) {
      re[i] *= s;
      im[i] *= s;
    }
  }

  private run(re: Float64Array, im: Float64Array, sign: number): void {
    const { n, rev, cos, sin } = this;
    for (let i = 0; i < n; i++) {
      const j = rev[i];
      if (j > i) {
        let t = re[i];
        re[i] = re[j];
        re[j] = t;
        t = im[i];
        im[i] = im[j];
        im[j] = t;
      }
    }
    for (let size = 2; size <= n; size <<= 1) {
      const half = size >> 1;
      const step = n / size;
      for (let start = 0; start < n; start += size) {
        for (let k = 0; k < half; k++) {
          const wr = cos[k * step];
          const wi = sign * sin[k * step];
          const a = start + k;
          const b = a + half;
          const xr = re[b] * wr - im[b] * wi;
          const xi = re[b] * wi + im[b] * wr;
          re[b] = re[a] - xr;
          im[b] = im[a] - xi;
          re[a] += xr;
          im[a] += xi;
        }
      }
    }
  }
}

/**
 * Transforms of real rows of length n (a rows x n array, row-major) to their half spectra
 * (rows x (n/2 + 1) complex, split into re/im arrays) and back. Two rows share one complex FFT.
 */
export class RealRows {
  readonly n: number;
  readonly modes: number;
  private readonly fft: FFT;
  private readonly zr: Float64Array;
  private readonly zi: Float64Array;

  constructor(n: number) {
    this.fft = new FFT(n);
    this.n = n;
    this.modes = n / 2 + 1;
    this.zr = new Float64Array(n);
    this.zi = new Float64Array(n);
  }

  /** src rows [r0, r0 + rows) -> spectra rows [0, rows) of (outRe, outIm). */
  forward(src: Float64Array, r0: number, rows: number, outRe: Float64Array, outIm: Float64Array): void {
    const { n, modes, zr, zi } = this;
    for (let r = 0; r < rows; r += 2) {
      const pair = r + 1 < rows;
      const a = (r0 + r) * n;
      for (let i = 0; i < n; i++) {
        zr[i] = src[a + i];
        zi[i] = pair ? src[a + n + i] : 0;
      }
      this.fft.forward(zr, zi);
      const oa = r * modes;
      const ob = oa + modes;
      for (let m = 0; m < modes; m++) {
        const mm = (n - m) % n;
        outRe[oa + m] = 0.5 * (zr[m] + zr[mm]);
        outIm[oa + m] = 0.5 * (zi[m] - zi[mm]);
        if (pair) {
          outRe[ob + m] = 0.5 * (zi[m] + zi[mm]);
          outIm[ob + m] = -0.5 * (zr[m] - zr[mm]);
        }
      }
    }
  }

  /** spectra rows [0, rows) -> real rows [r0, r0 + rows) of dst. */
  inverse(inRe: Float64Array, inIm: Float64Array, rows: number, dst: Float64Array, r0: number): void {
    const { n, modes, zr, zi } = this;
    for (let r = 0; r < rows; r += 2) {
      const pair = r + 1 < rows;
      const oa = r * modes;
      const ob = oa + modes;
      for (let m = 0; m < n; m++) {
        let ar: number, ai: number, br: number, bi: number;
        if (m < modes) {
          ar = inRe[oa + m];
          ai = inIm[oa + m];
          br = pair ? inRe[ob + m] : 0;
          bi = pair ? inIm[ob + m] : 0;
        } else {
          const k = n - m;
          ar = inRe[oa + k];
          ai = -inIm[oa + k];
          br = pair ? inRe[ob + k] : 0;
          bi = pair ? -inIm[ob + k] : 0;
        }
        if (m === 0 || m === n / 2) {
          // the real transform has real coefficients here
          ai = 0;
          bi = 0;
        }
        zr[m] = ar - bi;
        zi[m] = ai + br;
      }
      this.fft.inverse(zr, zi);
      const a = (r0 + r) * n;
      for (let i = 0; i < n; i++) {
        dst[a + i] = zr[i];
        if (pair) dst[a + n + i] = zi[i];
      }
    }
  }
}
