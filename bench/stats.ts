/**
 * The little statistics the footprint bench needs.
 *
 * @module
 */

/**
 * The median.
 *
 * @param values Numbers, at least one.
 * @returns The middle value (the mean of the two middle ones for an even count).
 *
 * @example
 * ```ts
 * import { median } from "./stats.ts";
 * console.assert(median([3, 1, 2]) === 2 && median([1, 2, 3, 4]) === 2.5);
 * ```
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("Median of no values");
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** A least-squares line through points. */
export interface Line {
  /** Change of y per unit of x. */
  slope: number;
  /** y at x = 0. */
  intercept: number;
  /** Standard deviation of the points around the line: the noise. */
  residualSd: number;
  /** Standard error of the slope: how far noise alone could move it. */
  slopeSe: number;
}

/**
 * Fits a least-squares line.
 *
 * @param points `[x, y]` pairs, at least two with different x.
 * @returns Slope, intercept and the spread around the line.
 *
 * @example
 * ```ts
 * import { fitLine } from "./stats.ts";
 * const line = fitLine([[0, 1], [1, 3], [2, 5]]);
 * console.assert(line.slope === 2 && line.intercept === 1 && line.slopeSe === 0);
 * ```
 */
export function fitLine(points: readonly (readonly [number, number])[]): Line {
  const n = points.length;
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / n;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const [x, y] of points) {
    sxx += (x - meanX) ** 2;
    sxy += (x - meanX) * (y - meanY);
  }
  if (n < 2 || sxx === 0) throw new RangeError("A line needs two points with different x");
  const slope = sxy / sxx;
  const intercept = meanY - slope * meanX;
  const squares = points.reduce((sum, [x, y]) => sum + (y - intercept - slope * x) ** 2, 0);
  const residualSd = n > 2 ? Math.sqrt(squares / (n - 2)) : 0;
  return { slope, intercept, residualSd, slopeSe: residualSd / Math.sqrt(sxx) };
}

/**
 * The Theil–Sen slope: the median of the slopes between every pair of points. A one-off step
 * (an allocator or V8 enlarging its heap once) moves it little; a steady trend moves it fully.
 *
 * @param points `[x, y]` pairs, at least two with different x.
 * @returns The slope, change of y per unit of x.
 *
 * @example
 * ```ts
 * import { theilSenSlope } from "./stats.ts";
 * console.assert(theilSenSlope([[0, 0], [1, 10], [2, 10], [3, 10], [4, 10]]) === 0);
 * console.assert(theilSenSlope([[0, 0], [1, 2], [2, 4]]) === 2);
 * ```
 */
export function theilSenSlope(points: readonly (readonly [number, number])[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) {
      const dx = points[j][0] - points[i][0];
      if (dx !== 0) slopes.push((points[j][1] - points[i][1]) / dx);
    }
  }
  return median(slopes);
}
