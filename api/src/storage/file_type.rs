//! What a file is, by its first bytes, its name or its media type.

/// The file types we accept, with the magic bytes that prove them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Png,
    Jpeg,
    Webp,
    Glb,
    Ply,
    Obj,
}

impl FileType {
    pub const ALL: [FileType; 6] =
        [FileType::Png, FileType::Jpeg, FileType::Webp, FileType::Glb, FileType::Ply, FileType::Obj];

    pub fn mime(self) -> &'static str {
        match self {
            FileType::Png => "image/png",
            FileType::Jpeg => "image/jpeg",
            FileType::Webp => "image/webp",
            FileType::Glb => "model/gltf-binary",
            FileType::Ply => "application/ply",
            FileType::Obj => "model/obj",
        }
    }

    /// The type of exactly this media type (lower case, no parameters: the spec lists the
    /// accepted values).
    pub fn from_mime(mime: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.mime() == mime)
    }

    pub fn extension(self) -> &'static str {
        match self {
            FileType::Png => "png",
            FileType::Jpeg => "jpg",
            FileType::Webp => "webp",
            FileType::Glb => "glb",
            FileType::Ply => "ply",
            FileType::Obj => "obj",
        }
    }

    pub fn from_extension(name: &str) -> Option<Self> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "jpeg" | "jpg" => Some(FileType::Jpeg),
            other => Self::ALL.into_iter().find(|t| t.extension() == other),
        }
    }

    pub fn is_image(self) -> bool {
        matches!(self, FileType::Png | FileType::Jpeg | FileType::Webp)
    }

    /// What the first bytes of a file say it is.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(FileType::Png)
        } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(FileType::Jpeg)
        } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
            Some(FileType::Webp)
        } else if head.starts_with(b"glTF") {
            Some(FileType::Glb)
        } else if head.starts_with(b"ply\n") || head.starts_with(b"ply\r\n") {
            Some(FileType::Ply)
        } else if looks_like_obj(head) {
            Some(FileType::Obj)
        } else {
            None
        }
    }
}

/// Wavefront OBJ is text: only printable ASCII, and statements such as `v x y z`.
fn looks_like_obj(head: &[u8]) -> bool {
    let text_ok = head.iter().all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    text_ok
        && std::str::from_utf8(head).is_ok_and(|t| {
            t.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("v ") || l.starts_with("vn ") || l.starts_with("vt ") || l.starts_with("f ")
            }) && t.lines().all(|l| {
                let l = l.trim_start();
                l.is_empty()
                    || l.starts_with('#')
                    || ["v ", "vn ", "vt ", "vp ", "f ", "o ", "g ", "s ", "l ", "p ", "mtllib ", "usemtl "].iter().any(|p| l.starts_with(p))
                    // the last line may be cut mid-statement
                    || !t.ends_with('\n')
            })
        })
}
