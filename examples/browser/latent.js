// Sprite number `seed`'s latent vector, as Python draws it:
//   z = numpy.random.default_rng(seed).standard_normal(nz, dtype=numpy.float32)
// That is numpy's SeedSequence (its entropy pool of four 32-bit words), the PCG64 bit generator (128-bit LCG with
// the XSL-RR output), and numpy's float32 ziggurat for normals. 64- and 128-bit arithmetic uses BigInt; float32
// arithmetic rounds every step with Math.fround, as C float arithmetic does. tests/browser checks it against values
// numpy printed (fixtures/latents.json).

const MASK32 = 0xffffffffn;
const MASK64 = (1n << 64n) - 1n;
const MASK128 = (1n << 128n) - 1n;

// SeedSequence's hashing constants (numpy/random/bit_generator.pyx, after M. E. O'Neill's seed_seq)
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const POOL_SIZE = 4;

const mul32 = (a, b) => Math.imul(a, b) >>> 0;

// A non-negative integer seed -> its 32-bit words, least significant first ([0] for 0).
function seedWords(seed) {
  let n = BigInt(seed);
  if (n < 0n) throw new RangeError("seed must be a non-negative integer");
  const words = [];
  do {
    words.push(Number(n & MASK32));
    n >>= 32n;
  } while (n > 0n);
  return words;
}

// SeedSequence(seed).generate_state(count, uint32): `count` 32-bit words.
function seedSequenceState(seed, count) {
  const entropy = seedWords(seed);
  let hashConst = INIT_A;
  const hashmix = (value) => {
    value = (value ^ hashConst) >>> 0;
    hashConst = mul32(hashConst, MULT_A);
    value = mul32(value, hashConst);
    return (value ^ (value >>> 16)) >>> 0;
  };
  const mix = (x, y) => {
    const result = (mul32(MIX_MULT_L, x) - mul32(MIX_MULT_R, y)) >>> 0;
    return (result ^ (result >>> 16)) >>> 0;
  };
  const pool = [];
  for (let i = 0; i < POOL_SIZE; i++) pool.push(hashmix(i < entropy.length ? entropy[i] : 0));
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) {
      if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
    }
  }
  for (let src = POOL_SIZE; src < entropy.length; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst], hashmix(entropy[src]));
  }
  const state = [];
  hashConst = INIT_B;
  for (let i = 0; i < count; i++) {
    let value = (pool[i % POOL_SIZE] ^ hashConst) >>> 0;
    hashConst = mul32(hashConst, MULT_B);
    value = mul32(value, hashConst);
    state.push((value ^ (value >>> 16)) >>> 0);
  }
  return state;
}

const PCG_MULT = 0x2360ed051fc65da44385df649fccf645n;

// numpy's PCG64, with its spare-half buffer for 32-bit draws.
class PCG64 {
  constructor(seed) {
    const w = seedSequenceState(seed, 8).map(BigInt);
    const u = [0, 1, 2, 3].map((i) => w[2 * i] | (w[2 * i + 1] << 32n)); // four uint64, little-endian words
    const initState = (u[0] << 64n) | u[1];
    const initSeq = (u[2] << 64n) | u[3];
    this.inc = ((initSeq << 1n) | 1n) & MASK128;
    this.state = 0n;
    this.step();
    this.state = (this.state + initState) & MASK128;
    this.step();
    this.spare = null;
  }

  step() {
    this.state = (this.state * PCG_MULT + this.inc) & MASK128;
  }

  next64() {
    this.step();
    const rot = this.state >> 122n;
    const value = ((this.state >> 64n) ^ this.state) & MASK64;
    return ((value >> rot) | (value << ((64n - rot) & 63n))) & MASK64;
  }

  next32() {
    if (this.spare !== null) {
      const spare = this.spare;
      this.spare = null;
      return spare;
    }
    const next = this.next64();
    this.spare = Number(next >> 32n);
    return Number(next & MASK32);
  }

  nextFloat() {
    return Math.fround((this.next32() >>> 8) * (1.0 / 16777216.0));
  }
}

// The ziggurat's 256 strips for the float32 normal (Marsaglia & Tsang 2000), with a 23-bit uniform; built the
// way their paper builds them, in double precision, then rounded to float32 as numpy stores them.
const ZIG_R = 3.6541528853610088;
const ZIG_AREA = 4.92867323399e-3;
const { ki, wi, fi } = (() => {
  const m = 2 ** 23;
  const ki = new Uint32Array(256);
  const wi = new Float64Array(256);
  const fi = new Float64Array(256);
  let dn = ZIG_R;
  let tn = dn;
  const q = ZIG_AREA / Math.exp(-0.5 * dn * dn);
  ki[0] = Math.trunc((dn / q) * m);
  ki[1] = 0;
  wi[0] = q / m;
  wi[255] = dn / m;
  fi[0] = 1.0;
  fi[255] = Math.exp(-0.5 * dn * dn);
  for (let i = 254; i >= 1; i--) {
    dn = Math.sqrt(-2.0 * Math.log(ZIG_AREA / dn + Math.exp(-0.5 * dn * dn)));
    ki[i + 1] = Math.trunc((dn / tn) * m);
    tn = dn;
    fi[i] = Math.exp(-0.5 * dn * dn);
    wi[i] = dn / m;
  }
  return { ki, wi: Float32Array.from(wi), fi: Float32Array.from(fi) };
})();
const R_F = Math.fround(ZIG_R);
const INV_R_F = Math.fround(0.27366123732975828);
const f = Math.fround;

// numpy's random_standard_normal_f.
function standardNormalF(rng) {
  for (;;) {
    const r = rng.next32();
    const idx = r & 0xff;
    const sign = (r >>> 8) & 1;
    const rabs = (r >>> 9) & 0x7fffff;
    let x = f(rabs * wi[idx]);
    if (sign) x = -x;
    if (rabs < ki[idx]) return x; // nearly every draw ends here
    if (idx === 0) {
      for (;;) {
        const xx = f(-INV_R_F * f(Math.log1p(-rng.nextFloat())));
        const yy = f(-f(Math.log1p(-rng.nextFloat())));
        if (f(yy + yy) > f(xx * xx)) return (rabs >>> 8) & 1 ? -f(R_F + xx) : f(R_F + xx);
      }
    }
    if (f(f(f(fi[idx - 1] - fi[idx]) * rng.nextFloat()) + fi[idx]) < Math.exp(-0.5 * x * x)) return x;
  }
}

// The latent vector (nz float32) of sprite number `seed` (a non-negative integer, as a number, BigInt or string).
export function latent(seed, nz) {
  const rng = new PCG64(seed);
  const z = new Float32Array(nz);
  for (let i = 0; i < nz; i++) z[i] = standardNormalF(rng);
  return z;
}

// A batch (seeds.length * nz), one row per seed.
export function latents(seeds, nz) {
  const z = new Float32Array(seeds.length * nz);
  seeds.forEach((seed, row) => z.set(latent(seed, nz), row * nz));
  return z;
}
