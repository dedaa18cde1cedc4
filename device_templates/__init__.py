"""Device templates (as evcc does it): a device type's registers and points written once, as YAML.

The simulators build their register maps and BACnet objects from a template; the edge
agent expands a site YAML's `template:` devices into its point lists from the same file,
so the two cannot drift. A user adds a device type with a template file, no code.
Depends on pydantic, PyYAML and `protocols` only.
"""

from device_templates.expand import TEMPLATE_KEYS, PointOverride, expand_site, template_points
from device_templates.loader import BUILTIN_DIR, builtin, builtin_catalog, load_catalog, load_template
from device_templates.schema import (
    SUNSPEC_BASE,
    BacnetObject,
    Constant,
    DeviceTemplate,
    Register,
    SunspecModel,
    TemplatePoint,
)

__all__ = [
    "BUILTIN_DIR",
    "SUNSPEC_BASE",
    "TEMPLATE_KEYS",
    "BacnetObject",
    "Constant",
    "DeviceTemplate",
    "PointOverride",
    "Register",
    "SunspecModel",
    "TemplatePoint",
    "builtin",
    "builtin_catalog",
    "expand_site",
    "load_catalog",
    "load_template",
    "template_points",
]
