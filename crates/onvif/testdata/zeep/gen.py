# Regenerates the onvif-zeep 0.2.12 (zeep 4.3.3) request transcripts in this directory:
#   python3 gen.py .   (pip install onvif-zeep; the WSDLs ship with it)
# Builds the exact requests onvif-zeep sends (WS-UsernameToken PasswordDigest), without a network.
import os, sys, datetime
from lxml import etree
from zeep import Client
from zeep.wsse.username import UsernameToken
import onvif
W=os.path.join(os.path.dirname(os.path.dirname(onvif.__file__)), 'wsdl/')
created = datetime.datetime(2026,12,7,21,29,0,tzinfo=datetime.timezone.utc)
out = sys.argv[1]
def mk(wsdl, binding, addr, name, op, **kw):
    tok = UsernameToken('admin', 'wsse-secret-for-tests', use_digest=True, nonce='0123456789abcdef', created=created)
    c = Client(W+wsdl, wsse=tok)
    svc = c.create_service(binding, addr)
    node = c.create_message(svc, op, **kw)
    open(os.path.join(out, name), 'wb').write(etree.tostring(node, xml_declaration=True, encoding='utf-8'))
dev = ('devicemgmt.wsdl','{http://www.onvif.org/ver10/device/wsdl}DeviceBinding','http://127.0.0.1:8000/onvif/device_service')
med = ('media.wsdl','{http://www.onvif.org/ver10/media/wsdl}MediaBinding','http://127.0.0.1:8000/onvif/media_service')
mk(*dev, 'zeep_GetDeviceInformation.xml', 'GetDeviceInformation')
mk(*dev, 'zeep_GetCapabilities.xml', 'GetCapabilities', Category='All')
mk(*med, 'zeep_GetProfiles.xml', 'GetProfiles')
mk(*med, 'zeep_GetStreamUri.xml', 'GetStreamUri', StreamSetup={'Stream':'RTP-Unicast','Transport':{'Protocol':'RTSP'}}, ProfileToken='main')
mk(*med, 'zeep_GetSnapshotUri.xml', 'GetSnapshotUri', ProfileToken='sub')
