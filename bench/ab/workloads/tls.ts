/**
 * The `tls` workload: HTTPS over loopback with a new connection, and so a
 * full TLS 1.3 handshake, per request: `Deno.serve` with a certificate
 * (rustls) and `fetch` through a fresh `Deno.createHttpClient` on Deno;
 * `Bun.serve` with `tls` (BoringSSL) and `fetch` with `keepalive: false` on
 * Bun, the server issuing no session tickets, so that no handshake resumes
 * a session. The certificate is a test certificate made for this benchmark (a
 * P-256 CA and a leaf for `localhost` and `127.0.0.1`, valid 2000-2099);
 * its key protects nothing.
 *
 * @module
 */
import type { Workload } from "../workloads.ts";
import { fail } from "./fail.ts";

/** The test CA the client trusts. */
export const TEST_CA = `
-----BEGIN CERTIFICATE-----
MIIBfTCCASKgAwIBAgICEAAwCgYIKoZIzj0EAwIwJDEiMCAGA1UEAwwZcGFnZS1w
cmltZXIgYmVuY2ggdGVzdCBDQTAgFw0wMDAxMDEwMDAwMDBaGA8yMDk5MTIzMTIz
NTk1OVowJDEiMCAGA1UEAwwZcGFnZS1wcmltZXIgYmVuY2ggdGVzdCBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABIwg1yucI57PCApnhGLgQI9h0udFbPdeGDWz
6twEMglBFP5DxXFT30jrHXL1E31BxW6l4SgkHyQhOUw39AAn/YyjQjBAMA8GA1Ud
EwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgIEMB0GA1UdDgQWBBTXhIQACmoIoA7t
0g/T4tVgWk5RgjAKBggqhkjOPQQDAgNJADBGAiEA1g7Y/bl4NPxvnUHae4EYXNjL
3vitxKm5W51zkuFmW28CIQDdI5tUTi1GWC2vkL3jUv1XgyTDK19pAHVcIOm3ul9D
DA==
-----END CERTIFICATE-----
`;

/** The server certificate, issued by `TEST_CA`. */
export const TEST_CERT = `
-----BEGIN CERTIFICATE-----
MIIBvDCCAWOgAwIBAgICEAEwCgYIKoZIzj0EAwIwJDEiMCAGA1UEAwwZcGFnZS1w
cmltZXIgYmVuY2ggdGVzdCBDQTAgFw0wMDAxMDEwMDAwMDBaGA8yMDk5MTIzMTIz
NTk1OVowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEiIHfj2nzOo333YMTH0Fpy4WFBMbAvFAgjkUR1lJUcx2IYMuYSN7tzCdW
0gFAH+O3JBnRhAVckabt2tfsHzhgxqOBkjCBjzAMBgNVHRMBAf8EAjAAMA4GA1Ud
DwEB/wQEAwIHgDATBgNVHSUEDDAKBggrBgEFBQcDATAaBgNVHREEEzARgglsb2Nh
bGhvc3SHBH8AAAEwHwYDVR0jBBgwFoAU14SEAApqCKAO7dIP0+LVYFpOUYIwHQYD
VR0OBBYEFCJYZwX1bA0xCqQ+PYrygqNGl1sfMAoGCCqGSM49BAMCA0cAMEQCIGdO
sfbAbLi/HtxUw7+OpMlTk+zE8WDxLO3LdZpRQj9wAiBd6mQCbs5dF0ooXDKNFtCz
xJip0lbmYvFMxcOgyimrtQ==
-----END CERTIFICATE-----
`;

/** The server key (PKCS #8, P-256), for this benchmark only. */
export const TEST_KEY = `
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg/KXAlUKlzH+7bxxz
hGZ3wLSQsZbczklpl6WHBiHS+9OhRANCAASIgd+PafM6jffdgxMfQWnLhYUExsC8
UCCORRHWUlRzHYhgy5hI3u3MJ1bSAUAf47ckGdGEBVyRpu3a1+wfOGDG
-----END PRIVATE KEY-----
`;

/** OpenSSL's (and BoringSSL's) `SSL_OP_NO_TICKET`. */
const SSL_OP_NO_TICKET = 0x4000;

/** The part of Bun's global this workload uses. */
interface BunTls {
  serve(options: {
    hostname: string;
    port: number;
    tls: { cert: string; key: string; secureOptions: number };
    fetch(
      req: Request,
      server: { requestIP(r: Request): { port: number } | null },
    ): Response;
  }): { port: number; stop(closeActiveConnections?: boolean): unknown };
}

/** A running HTTPS server and a client that opens a connection per call. */
interface TlsPair {
  origin: string;
  get(path: string): Promise<Response>;
  close(): Promise<void>;
}

/** The response: the path's number doubled, and the client's port. */
function answer(path: string, port: number): Response {
  const n = Number(path.slice(3));
  return new Response(`${n * 2 + 1} ${port}`, {
    headers: { "content-type": "text/plain" },
  });
}

function start(): TlsPair {
  const bun = (globalThis as { Bun?: BunTls }).Bun;
  const ca = TEST_CA.trim(), cert = TEST_CERT.trim(), key = TEST_KEY.trim();
  if (bun) {
    const server = bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      // No session tickets, so no resumption: Bun's fetch would otherwise
      // resume the session (checked with openssl s_client -sess_in).
      tls: { cert, key, secureOptions: SSL_OP_NO_TICKET },
      fetch: (req, s) =>
        answer(new URL(req.url).pathname, s.requestIP(req)?.port ?? 0),
    });
    return {
      origin: `https://127.0.0.1:${server.port}`,
      get: (url) =>
        fetch(url, { keepalive: false, tls: { ca } } as RequestInit),
      close: async () => {
        await server.stop(true);
      },
    };
  }
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert, key, onListen: () => {} },
    (req, info) =>
      answer(
        new URL(req.url).pathname,
        (info.remoteAddr as Deno.NetAddr).port,
      ),
  );
  return {
    origin: `https://127.0.0.1:${server.addr.port}`,
    async get(url) {
      // A client of its own: no pooled connection, no session cache.
      const client = Deno.createHttpClient({ caCerts: [ca] });
      try {
        const res = await fetch(url, { client });
        // Read before the client closes.
        return new Response(await res.arrayBuffer(), { status: res.status });
      } finally {
        client.close();
      }
    },
    close: () => server.shutdown(),
  };
}

export const tls: Workload = {
  name: "tls",
  description: `HTTPS GET of ${
    "Bun" in globalThis ? "Bun.serve (BoringSSL)" : "Deno.serve (rustls)"
  } on 127.0.0.1 in the same process, a new connection and full TLS 1.3 handshake (no resumption) per request (checked by the client port)`,
  setup() {
    const pair = start();
    let i = 0;
    let lastPort = -1;
    return {
      async run(ops) {
        for (let o = 0; o < ops; o++, i++) {
          const res = await pair.get(`${pair.origin}/n/${i}`);
          const [body, port] = (await res.text()).split(" ");
          if (res.status !== 200 || body !== String(i * 2 + 1)) {
            fail("tls", `GET /n/${i}: ${res.status} ${body}`);
          }
          if (port === String(lastPort)) {
            fail("tls", `request ${i} reused the connection from port ${port}`);
          }
          lastPort = Number(port);
        }
      },
      close: () => pair.close(),
    };
  },
};
