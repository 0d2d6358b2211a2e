"""Reports: results drawn as HTML with inline SVG charts, one self-contained page or a notebook view."""
