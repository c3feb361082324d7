"""The /.agegate/ pages a browser visits: challenge, callback, status, logout."""
