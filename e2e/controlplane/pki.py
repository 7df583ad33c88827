"""Certificates and keys for the local control plane, made with the openssl command line.

One throw-away CA signs the kube-apiserver serving certificate (SAN 127.0.0.1, localhost and the
in-cluster service names) and an admin client certificate (O=system:masters, which RBAC treats as
cluster-admin). A separate RSA key pair signs and verifies service-account tokens.
"""

import os
import subprocess

SERVING_SANS = [
    "IP:127.0.0.1",
    "DNS:localhost",
    "IP:10.0.0.1",  # the kubernetes Service's cluster IP in --service-cluster-ip-range
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
]


def _openssl(*args, stdin=None):
    res = subprocess.run(["openssl", *args], input=stdin, capture_output=True)
    if res.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], res.stderr.decode(errors="replace")))
    return res.stdout


def _ec_key(path):
    # P-256 keys: fast to make, accepted by Go, OpenSSL and Python's ssl alike.
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    os.chmod(path, 0o600)


def _sign(pki, name, subject, extensions):
    key = os.path.join(pki, name + ".key")
    csr = os.path.join(pki, name + ".csr")
    ext = os.path.join(pki, name + ".ext")
    _ec_key(key)
    _openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
    with open(ext, "w") as f:
        f.write("\n".join(extensions) + "\n")
    _openssl("x509", "-req", "-in", csr, "-CA", os.path.join(pki, "ca.crt"),
             "-CAkey", os.path.join(pki, "ca.key"), "-CAcreateserial", "-days", "3650",
             "-sha256", "-extfile", ext, "-out", os.path.join(pki, name + ".crt"))
    os.remove(csr)
    os.remove(ext)


def generate(pki):
    """Creates every certificate and key under the directory pki unless it is already complete."""
    done = os.path.join(pki, ".complete")
    if os.path.exists(done):
        return
    os.makedirs(pki, exist_ok=True)
    _ec_key(os.path.join(pki, "ca.key"))
    _openssl("req", "-x509", "-new", "-key", os.path.join(pki, "ca.key"), "-subj",
             "/CN=vios-local-ca", "-days", "3650", "-sha256",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
             "-out", os.path.join(pki, "ca.crt"))
    _sign(pki, "apiserver", "/CN=kube-apiserver", [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=" + ",".join(SERVING_SANS),
    ])
    _sign(pki, "admin", "/O=system:masters/CN=vios-admin", [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        "extendedKeyUsage=clientAuth",
    ])
    sa_key = os.path.join(pki, "sa.key")
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", sa_key)
    os.chmod(sa_key, 0o600)
    _openssl("pkey", "-in", sa_key, "-pubout", "-out", os.path.join(pki, "sa.pub"))
    with open(done, "w") as f:
        f.write("ok\n")
