// Encodes google.rpc detail messages for tests (the client only decodes them).

import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

export function errorInfo(reason: string, domain = "kgw", metadata: Record<string, string> = {}): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).string(reason);
  w.tag(2, WireType.LengthDelimited).string(domain);
  for (const [k, v] of Object.entries(metadata)) {
    w.tag(3, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string(k).tag(2, WireType.LengthDelimited).string(v).join();
  }
  return w.finish();
}

export function badRequest(violations: Array<[string, string]>): Uint8Array {
  const w = new BinaryWriter();
  for (const [field, description] of violations) {
    w.tag(1, WireType.LengthDelimited)
      .fork()
      .tag(1, WireType.LengthDelimited)
      .string(field)
      .tag(2, WireType.LengthDelimited)
      .string(description)
      .join();
  }
  return w.finish();
}
