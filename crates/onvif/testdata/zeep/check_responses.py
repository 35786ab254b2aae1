# Deserializes every response written by `cargo run -p vigil-onvif --example dump_responses -- DIR`
# with zeep and onvif-zeep's ONVIF WSDLs:  python3 check_responses.py DIR  (exit 1 on any failure)
import sys
D = sys.argv[1]
import os, glob, onvif
from lxml import etree
from zeep import Client
import zeep.exceptions
W=os.path.join(os.path.dirname(os.path.dirname(onvif.__file__)), 'wsdl/')
clients={'tds':(Client(W+'devicemgmt.wsdl'),'{http://www.onvif.org/ver10/device/wsdl}DeviceBinding'),
         'trt':(Client(W+'media.wsdl'),'{http://www.onvif.org/ver10/media/wsdl}MediaBinding')}
ok=bad=0
for f in sorted(glob.glob(os.path.join(D, '*_*.xml'))):
    p,op=os.path.basename(f)[:-4].split('_',1)
    c,b=clients[p]
    binding=c.wsdl.bindings[b]
    env=etree.fromstring(open(f,'rb').read())
    try:
        res=binding.get(op).process_reply(env)
        ok+=1
        s=repr(res).replace('\n',' ')[:150]
        print('OK ',op, s)
    except Exception as e:
        bad+=1
        print('BAD',op,type(e).__name__,str(e)[:300])
# fault
c,b=clients['tds']
try:
    c.wsdl.bindings[b].process_error(etree.fromstring(open(os.path.join(D, 'fault.xml'),'rb').read()), c.wsdl.bindings[b].get('GetUsers'))
except zeep.exceptions.Fault as e:
    print('fault ->', e.message, e.code, e.subcodes)
print(ok,'ok',bad,'bad')
sys.exit(1 if bad else 0)
