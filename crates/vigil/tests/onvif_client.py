"""The ONVIF client side of tests/onvif.rs: independent peers from PyPI against a running
`vigil camera`.

1. WS-Discovery (WSDiscovery): a unicast Probe for dn:NetworkVideoTransmitter, built and its
   ProbeMatches parsed by the library; the device service XAddr comes from the reply.
2. onvif-zeep (zeep, WS-UsernameToken PasswordDigest): GetDeviceInformation, GetScopes,
   GetProfiles, GetStreamUri, GetSnapshotUri, through that XAddr.
3. The snapshot URI fetched with HTTP Digest (requests), and GetDeviceInformation with HTTP
   Digest instead of a UsernameToken.
4. A wrong ONVIF password: the zeep Fault it gets.
5. The exact envelope zeep sent (recorded by the transport) posted again: the replayed
   UsernameToken must be refused.

Usage: onvif_client.py DISCOVERY_ADDR USER ONVIF_PASSWORD HTTP_PASSWORD; prints one JSON object.
"""

import json
import socket
import sys
import time

import requests
import urllib3
from onvif import ONVIFCamera
from wsdiscovery import QName
from wsdiscovery.actions.probe import constructProbe
from wsdiscovery.message import createSOAPMessage, parseSOAPMessage
from zeep.exceptions import Fault
from zeep.transports import Transport

urllib3.disable_warnings()
disc, user, onvif_pw, http_pw = sys.argv[1:5]
out = {}

# 1. WS-Discovery, unicast to the camera's discovery socket.
host, port = disc.rsplit(":", 1)
probe = constructProbe(
    [QName("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter", "dn")], []
)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.settimeout(5)
t0 = time.monotonic()
s.sendto(createSOAPMessage(probe).encode(), (host, int(port)))
data, addr = s.recvfrom(65536)
out["probe_ms"] = (time.monotonic() - t0) * 1000
msg = parseSOAPMessage(data, addr[0])
match = msg.getProbeResolveMatches()[0]
out["probe"] = {
    "action": msg.getAction(),
    "relates": msg.getRelatesTo() == probe.getMessageId(),
    "epr": match.getEPR(),
    "types": [f"{t.getNamespace()}:{t.getLocalname()}" for t in match.getTypes()],
    "scopes": [str(x) for x in match.getScopes()],
    "xaddrs": match.getXAddrs(),
}
# A Probe for something else gets no answer.
other = constructProbe([QName("http://example.com/printers", "Printer", "p")], [])
s.sendto(createSOAPMessage(other).encode(), (host, int(port)))
s.settimeout(0.5)
try:
    s.recvfrom(65536)
    out["printer_probe_answered"] = True
except socket.timeout:
    out["printer_probe_answered"] = False

# 2. onvif-zeep through the discovered XAddr (it builds http://HOST:PORT/onvif/... itself).
xaddr = match.getXAddrs()[0]
hp = xaddr.split("//", 1)[1].split("/", 1)[0]
ohost, oport = hp.rsplit(":", 1)


class Recording(Transport):
    """Keeps every envelope zeep posts, to replay one."""

    def __init__(self):
        super().__init__()
        self.sent = []

    def post(self, address, message, headers):
        self.sent.append((address, message, dict(headers)))
        return super().post(address, message, headers)


t0 = time.monotonic()
rec = Recording()
cam = ONVIFCamera(ohost, int(oport), user, onvif_pw, transport=rec)
info = cam.devicemgmt.GetDeviceInformation()
out["device"] = {"manufacturer": info.Manufacturer, "model": info.Model,
                 "firmware": info.FirmwareVersion, "serial": info.SerialNumber}
out["scopes"] = [sc.ScopeItem for sc in cam.devicemgmt.GetScopes()]
media = cam.create_media_service()
profiles = media.GetProfiles()
out["profiles"] = [
    {"token": p.token,
     "width": p.VideoEncoderConfiguration.Resolution.Width,
     "height": p.VideoEncoderConfiguration.Resolution.Height,
     "encoding": p.VideoEncoderConfiguration.Encoding}
    for p in profiles
]
req = media.create_type("GetStreamUri")
req.ProfileToken = profiles[0].token
req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
out["stream_uri"] = media.GetStreamUri(req).Uri
out["snapshot_uri"] = media.GetSnapshotUri({"ProfileToken": profiles[0].token}).Uri
out["zeep_s"] = time.monotonic() - t0

# 3. The snapshot, with HTTP Digest (self-signed certificate: not verified here).
r = requests.get(out["snapshot_uri"], auth=requests.auth.HTTPDigestAuth(user, http_pw),
                 verify=False, timeout=20)
out["snapshot"] = {"status": r.status_code, "type": r.headers.get("content-type"),
                   "jpeg": r.content[:2] == b"\xff\xd8", "bytes": len(r.content)}

# HTTP Digest on the ONVIF endpoint itself (ONVIF Core §5.12.1), for clients that use it.
envl = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
        '<GetDeviceInformation xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>')
r = requests.post(xaddr, data=envl, auth=requests.auth.HTTPDigestAuth(user, http_pw),
                  headers={"Content-Type": "application/soap+xml"}, timeout=10)
out["http_digest"] = {"status": r.status_code, "model": b"vigil camera" in r.content}

# 4. The wrong password: a SOAP Fault (the PRE_AUTH GetCapabilities in the constructor answers).
bad = ONVIFCamera(ohost, int(oport), user, "not-the-credential")
try:
    # The zeep proxy itself: onvif-zeep's wrapper turns the Fault into a string.
    bad.devicemgmt.ws_client.GetDeviceInformation()
    out["wrong_password"] = "answered"
except Fault as f:
    out["wrong_password"] = {"code": f.code, "subcodes": [str(q) for q in (f.subcodes or [])],
                             "message": f.message}

# 5. Replay the envelope of the GetDeviceInformation that succeeded above.
sent = [m for m in rec.sent if b"GetDeviceInformation" in m[1]]
address, message, headers = sent[0]
r = requests.post(address, data=message, headers=headers, timeout=10)
out["replay"] = {"status": r.status_code, "not_authorized": b"NotAuthorized" in r.content}

print(json.dumps(out))
