"""lonja's variant of Pyro5's msgpack serializer, registered under msgpack's own id.

Pyro5 unpacks msgpack with `strict_map_key=True`, so a dict with int keys (`{1: "a"}`) fails on the
receiving side. This subclass unpacks with `strict_map_key=False`; the wire format is unchanged, so plain
Pyro5 peers still understand everything lonja sends.
"""

from __future__ import annotations

from typing import Any


def install_serializers() -> None:
    """Register lonja's msgpack serializer with Pyro5 (idempotent; a no-op without msgpack)."""
    from Pyro5 import serializers

    if "msgpack" not in serializers.serializers:
        return
    if type(serializers.serializers["msgpack"]).__name__ == "LonjaMsgpackSerializer":
        return
    import msgpack

    class LonjaMsgpackSerializer(serializers.MsgpackSerializer):
        def loads(self, data: Any) -> Any:
            return msgpack.unpackb(self._convertToBytes(data), raw=False, strict_map_key=False,
                                   object_hook=self.object_hook, ext_hook=self.ext_hook)

        def loadsCall(self, data: Any) -> Any:
            return self.loads(data)

    instance = LonjaMsgpackSerializer()
    serializers.serializers["msgpack"] = instance
    serializers.serializers_by_id[instance.serializer_id] = instance
