/**
 * The test beep of `--audio test`: a 1 kHz tone for 100 ms starting at every whole
 * second of capture time, silence otherwise. Samples are numbered from the Unix epoch
 * at 48 kHz, so sample n is captured at n / 48000 s and whole second S starts at sample
 * S * 48000 exactly: a beep onset is a whole second to the sample, whatever the moment
 * the capture started. The test video's white flash marks the same seconds.
 */

/** Sample rate of the test tone (Opus's). */
export const TONE_RATE = 48_000;
/** Pitch of the beep, Hz. */
export const BEEP_HZ = 1000;
/** Length of one beep, in samples (100 ms). */
export const BEEP_SAMPLES = TONE_RATE / 10;
/** Peak of the beep as a fraction of full scale (-6 dBFS: room for the encoder's overshoot). */
export const BEEP_LEVEL = 0.5;

const FULL_SCALE = 32767;

/** The epoch sample captured at `micros` (µs since the epoch), rounded down. */
export function sampleAtMicros(micros: number): number {
  // In whole seconds and the rest: micros * 48000 is past 2^53 and would round.
  const seconds = Math.floor(micros / 1e6);
  return seconds * TONE_RATE + Math.floor(((micros - seconds * 1e6) * 6) / 125);
}

/** When epoch sample `sample` is captured, µs since the epoch (rounded to the µs). */
export function microsOfSample(sample: number): number {
  const seconds = Math.floor(sample / TONE_RATE);
  return seconds * 1e6 + Math.round(((sample - seconds * TONE_RATE) * 125) / 6);
}

/** Whether epoch sample `sample` lies inside a beep. */
export function inBeep(sample: number): boolean {
  return sample % TONE_RATE < BEEP_SAMPLES;
}

/**
 * `count` samples of the test tone starting at epoch sample `first`, per channel
 * interleaved over `channels`, as signed 16-bit: what the capture writes to ffmpeg as
 * s16le. Pure: the same range always gives the same samples.
 */
export function testToneSamples(first: number, count: number, channels: 1 | 2 = 1): Int16Array {
  if (!Number.isSafeInteger(first) || first < 0) throw new RangeError(`testToneSamples: first must be a sample number >= 0, got ${first}`);
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`testToneSamples: count must be an integer >= 0, got ${count}`);
  const out = new Int16Array(count * channels);
  for (let i = 0; i < count; i++) {
    // The phase runs from the onset, so every beep starts at zero and is the same beep.
    const inSecond = (first + i) % TONE_RATE;
    if (inSecond >= BEEP_SAMPLES) continue;
    const v = Math.round(BEEP_LEVEL * FULL_SCALE * Math.sin((2 * Math.PI * BEEP_HZ * inSecond) / TONE_RATE));
    for (let c = 0; c < channels; c++) out[i * channels + c] = v;
  }
  return out;
}
