"""Last values per series, after Apache IoTDB's last cache."""

from .cache import LastValues
from .deletes import DeleteResult
from .records import NO_VALUE, SEP, decode_record, encode_record, time_from_key, time_key
from .scan import last_of_series

__all__ = [
    "LastValues", "DeleteResult", "last_of_series", "time_key", "time_from_key", "encode_record",
    "decode_record", "SEP", "NO_VALUE",
]
