import { assertRejects, assertStringIncludes } from "../../tests/assert.ts";
import { connect, KubeCredentialsError } from "./connect.ts";

Deno.test("connect() outside a pod says the build may not read KUBECONFIG, not that it is unset", async () => {
  const err = await assertRejects(
    () => connect({}, { serviceAccountDir: "/nowhere", unreadable: ["KUBECONFIG", "HOME"] }),
    KubeCredentialsError,
  );
  assertStringIncludes(err.message, "may not read KUBECONFIG or HOME");
  assertStringIncludes(err.message, "deno task start");
});

Deno.test("connect() without KUBECONFIG or HOME asks for KUBECONFIG", async () => {
  const err = await assertRejects(
    () => connect({}, { serviceAccountDir: "/nowhere" }),
    KubeCredentialsError,
  );
  assertStringIncludes(err.message, "KUBECONFIG is unset and HOME is unknown");
});
