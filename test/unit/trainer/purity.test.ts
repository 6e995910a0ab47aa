// src/trainer must stay pure so it runs in a worker thread or anywhere: no Node built-ins, no I/O,
// no external package but zod.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../../src/trainer/", import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : [],
  );
}

describe("src/trainer purity", () => {
  const files = sourceFiles(root);

  it("finds the sources", () => {
    expect(files.length).toBeGreaterThan(10);
  });

  for (const file of files) {
    it(relative(root, file), () => {
      const source = readFileSync(file, "utf8");
      const specifiers = [...source.matchAll(/\b(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1]);
      for (const specifier of specifiers) {
        const allowed = specifier === "zod" || (specifier.startsWith(".") && specifier.endsWith(".js"));
        expect(allowed, `${specifier} (only zod and relative .js imports)`).toBe(true);
      }
      expect(source).not.toMatch(/\brequire\(|\bprocess\.|\bBuffer\b|\bglobalThis\b|Math\.random/);
    });
  }
});
