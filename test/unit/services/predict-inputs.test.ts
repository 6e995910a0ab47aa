import { describe, expect, it } from "vitest";
import { AppError } from "../../../src/errors.js";
import { flattenInputs, Lru } from "../../../src/services/predict.js";

function rejects(inputs: unknown[], shape: number[]): AppError {
  try {
    flattenInputs(inputs, shape);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error("expected a rejection");
}

describe("prediction inputs", () => {
  it("takes flat inputs and nested ones of the model's shape, row after row", () => {
    expect(Array.from(flattenInputs([[1, 2, 3], [4, 5, 6]], [3]))).toEqual([1, 2, 3, 4, 5, 6]);
    const nested = [[[1, 2], [3, 4]], [[5, 6], [7, 8]]];
    expect(Array.from(flattenInputs([nested, [8, 7, 6, 5, 4, 3, 2, 1]], [2, 2, 2]))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1]);
  });

  it("names the input that has the wrong shape or a value that is not a finite number", () => {
    const e1 = rejects([[1, 2, 3], [1, 2]], [3]);
    expect(e1.code).toBe("invalid_input");
    expect(e1.status).toBe(422);
    expect(e1.param).toBe("inputs.1");
    expect(rejects([[1, 2, 3], [1, 2, 3], [1, "2", 3]], [3]).param).toBe("inputs.2");
    expect(rejects([[1, null, 3]], [3]).param).toBe("inputs.0");
    expect(rejects([[1, Number.NaN, 3]], [3]).param).toBe("inputs.0");
    expect(rejects([[1, Infinity, 3]], [3]).param).toBe("inputs.0");
    expect(rejects([5], [3]).param).toBe("inputs.0");
    expect(rejects([[[1, 2, 3]]], [3]).param).toBe("inputs.0");
    expect(rejects([[1, 2], [[1], [2]]], [1, 2]).param).toBe("inputs.1");
    expect(rejects([[[[1, 2], [3, 4]]], [[[1, 2], [3]]]], [1, 2, 2]).param).toBe("inputs.1");
    expect(rejects([[[[1, 2], [3, 4]]], [[1, 2], [3, 4]]], [1, 2, 2]).param).toBe("inputs.1");
  });

  it("the model cache forgets the least recently used", () => {
    const lru = new Lru<string, number>(2);
    lru.set("a", 1);
    lru.set("b", 2);
    expect(lru.get("a")).toBe(1);
    lru.set("c", 3);
    expect(lru.get("b")).toBeUndefined();
    expect(lru.get("a")).toBe(1);
    expect(lru.size).toBe(2);
  });
});
