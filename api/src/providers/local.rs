//! The offline `local` provider: real image algorithms, no network, no keys.
//!
//! Pure functions over decoded images, run by the worker on a blocking thread; each reports
//! progress (0–100) through a callback. Every one handles a 1024×1024 image in well under
//! a second in a release build (`cargo xtask bench`).
//!
//! * [`stylize`] — `image-gen`: sketch, posterize, pixel-art and duotone transforms (and a
//!   procedural canvas from the prompt when no image is given).
//! * [`remove_background`] — a colour model of the border, a flood fill of the background
//!   connected to it, morphological clean-up, the largest objects kept, a feathered alpha.
//! * [`relief_glb`] — a heightmap mesh (luminance × alpha) as binary glTF with the image as
//!   its texture.
//! * [`point_cloud_ply`] — a coloured point cloud as binary PLY.

use image::{GrayImage, Rgba, RgbaImage, imageops};

/// Progress callback: percent done and a short message.
pub type Progress<'a> = &'a mut dyn FnMut(u8, &str);

/// The styles `image-gen` knows; a style reference picks one by its id, or by a style's
/// name appearing in its name or prompt.
pub const STYLES: [&str; 4] = ["sketch", "posterize", "pixel-art", "duotone"];

/// Picks the transform for a style reference (id, name, prompt); posterize by default.
pub fn style_for(id: &str, name: &str, prompt: &str) -> &'static str {
    let text = format!("{id} {name} {prompt}").to_ascii_lowercase();
    STYLES
        .iter()
        .find(|s| id.eq_ignore_ascii_case(s))
        .or_else(|| STYLES.iter().find(|s| text.contains(*s) || text.contains(&s.replace('-', " "))))
        .copied()
        .unwrap_or("posterize")
}

fn luma(p: &Rgba<u8>) -> f32 {
    0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
}

/// A canvas from a prompt when `image-gen` has no input image: soft gradients and shapes
/// whose colours and layout are derived from the prompt's hash (deterministic).
pub fn canvas_from_prompt(prompt: &str, size: u32) -> RgbaImage {
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    for b in prompt.bytes() {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let c1 = [(next() % 256) as f32, (next() % 256) as f32, (next() % 256) as f32];
    let c2 = [(next() % 256) as f32, (next() % 256) as f32, (next() % 256) as f32];
    let blobs: Vec<(f32, f32, f32, [f32; 3])> = (0..5)
        .map(|_| {
            let x = (next() % 1000) as f32 / 1000.0;
            let y = (next() % 1000) as f32 / 1000.0;
            let r = 0.08 + (next() % 200) as f32 / 1000.0;
            (x, y, r, [(next() % 256) as f32, (next() % 256) as f32, (next() % 256) as f32])
        })
        .collect();
    RgbaImage::from_fn(size, size, |x, y| {
        let (u, v) = (x as f32 / size as f32, y as f32 / size as f32);
        let t = (u + v) / 2.0;
        let mut c = [0f32; 3];
        for i in 0..3 {
            c[i] = c1[i] * (1.0 - t) + c2[i] * t;
        }
        for (bx, by, r, col) in &blobs {
            let d = ((u - bx).powi(2) + (v - by).powi(2)).sqrt();
            if d < *r {
                let k = (1.0 - d / r).min(1.0).powf(0.5);
                for i in 0..3 {
                    c[i] = c[i] * (1.0 - k) + col[i] * k;
                }
            }
        }
        Rgba([c[0] as u8, c[1] as u8, c[2] as u8, 255])
    })
}

/// Applies a style transform; alpha is kept.
pub fn stylize(img: &RgbaImage, style: &str, progress: Progress<'_>) -> RgbaImage {
    progress(10, &format!("applying {style}"));
    let out = match style {
        "sketch" => sketch(img),
        "pixel-art" => pixel_art(img),
        "duotone" => duotone(img, [24, 32, 96], [255, 214, 120]),
        _ => posterize(img, 4),
    };
    progress(90, "styled");
    out
}

/// Pencil drawing: inverted Sobel edge strength over a light paper tone.
fn sketch(img: &RgbaImage) -> RgbaImage {
    let (w, h) = img.dimensions();
    let gray: Vec<f32> = img.pixels().map(luma).collect();
    let at = |x: i64, y: i64| gray[(y.clamp(0, h as i64 - 1) as u32 * w + x.clamp(0, w as i64 - 1) as u32) as usize];
    RgbaImage::from_fn(w, h, |x, y| {
        let (x, y) = (i64::from(x), i64::from(y));
        let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
            - at(x - 1, y - 1)
            - 2.0 * at(x - 1, y)
            - at(x - 1, y + 1);
        let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
            - at(x - 1, y - 1)
            - 2.0 * at(x, y - 1)
            - at(x + 1, y - 1);
        let edge = ((gx * gx + gy * gy).sqrt() / 4.0).min(255.0);
        let shade = at(x, y) * 0.15 + 215.0;
        let v = (shade - edge).clamp(0.0, 255.0) as u8;
        Rgba([v, v, (f32::from(v) * 0.97) as u8, img.get_pixel(x as u32, y as u32)[3]])
    })
}

/// `levels` steps per channel.
fn posterize(img: &RgbaImage, levels: u8) -> RgbaImage {
    let step = 255.0 / f32::from(levels - 1);
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for c in 0..3 {
            p[c] = ((f32::from(p[c]) / step).round() * step).clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Blocks of about 1/48 of the longer side, averaged, on a 5-level-per-channel palette.
fn pixel_art(img: &RgbaImage) -> RgbaImage {
    let (w, h) = img.dimensions();
    let block = (w.max(h) / 48).max(2);
    let small = imageops::resize(img, w.div_ceil(block), h.div_ceil(block), imageops::FilterType::Triangle);
    let small = posterize(&small, 5);
    imageops::resize(&small, w, h, imageops::FilterType::Nearest)
}

/// Luminance mapped between a dark and a light colour.
fn duotone(img: &RgbaImage, dark: [u8; 3], light: [u8; 3]) -> RgbaImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let t = luma(p) / 255.0;
        for c in 0..3 {
            p[c] = (f32::from(dark[c]) * (1.0 - t) + f32::from(light[c]) * t) as u8;
        }
    }
    out
}

/// Background removal. Returns the cut-out (RGBA, transparent background) and the binary
/// foreground mask it was made from.
///
/// 1. The outer ring of pixels models the background: its colours are clustered (k-means,
///    k ≤ 4) and a pixel's distance is to the nearest cluster centre.
/// 2. The threshold adapts to the border's own spread (noise, gradients, vignettes).
/// 3. Background = pixels under the threshold *connected to the border* (flood fill), so
///    an object's parts that happen to match the background colour stay.
/// 4. Clean-up: opening removes specks, closing fills pin holes, only connected objects of
///    at least 2 % of the largest are kept, and enclosed holes are filled.
/// 5. A 3×3 feather softens the alpha at the edge.
pub fn remove_background(img: &RgbaImage, progress: Progress<'_>) -> (RgbaImage, GrayImage) {
    let (w, h) = img.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    let px = |i: usize| {
        let p = img.as_raw();
        [f32::from(p[i * 4]), f32::from(p[i * 4 + 1]), f32::from(p[i * 4 + 2])]
    };
    // 1. Border samples (a 2-pixel ring) and their clusters.
    let ring = 2usize.min(wu / 2).min(hu / 2).max(1);
    let mut border: Vec<[f32; 3]> = Vec::new();
    for y in 0..hu {
        for x in 0..wu {
            if x < ring || y < ring || x >= wu - ring || y >= hu - ring {
                border.push(px(y * wu + x));
            }
        }
    }
    let centres = kmeans(&border, 4, 8);
    progress(15, "modelled the background");
    let dist = |c: [f32; 3]| {
        centres
            .iter()
            .map(|m| ((c[0] - m[0]).powi(2) + (c[1] - m[1]).powi(2) + (c[2] - m[2]).powi(2)).sqrt())
            .fold(f32::MAX, f32::min)
    };
    // 2. Threshold from the border's spread: its 98th percentile, with a floor.
    let mut bd: Vec<f32> = border.iter().map(|c| dist(*c)).collect();
    bd.sort_by(f32::total_cmp);
    let p98 = bd.get(bd.len() * 98 / 100).copied().unwrap_or(0.0);
    let threshold = (p98 * 1.6 + 12.0).clamp(18.0, 90.0);
    let d: Vec<f32> = (0..wu * hu).map(|i| dist(px(i))).collect();
    progress(35, "measured colour distances");
    // 3. Flood fill from the border through background-like pixels.
    let mut background = vec![false; wu * hu];
    let mut stack: Vec<usize> = Vec::new();
    for y in 0..hu {
        for x in 0..wu {
            if (x == 0 || y == 0 || x == wu - 1 || y == hu - 1) && d[y * wu + x] < threshold {
                background[y * wu + x] = true;
                stack.push(y * wu + x);
            }
        }
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % wu, i / wu);
        let mut visit = |j: usize| {
            if !background[j] && d[j] < threshold {
                background[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            visit(i - 1);
        }
        if x + 1 < wu {
            visit(i + 1);
        }
        if y > 0 {
            visit(i - wu);
        }
        if y + 1 < hu {
            visit(i + wu);
        }
    }
    progress(60, "separated the background");
    // 4. Clean-up.
    let mut fg: Vec<bool> = background.iter().map(|b| !b).collect();
    let radius = ((w.min(h) / 200) as usize).clamp(1, 3);
    fg = dilate(&erode(&fg, wu, hu, radius), wu, hu, radius);
    fg = erode(&dilate(&fg, wu, hu, radius), wu, hu, radius);
    fg = keep_large_components(&fg, wu, hu, 0.02);
    fg = fill_holes(&fg, wu, hu);
    progress(85, "cleaned up the mask");
    // 5. Feathered alpha.
    let mask = GrayImage::from_fn(w, h, |x, y| image::Luma([if fg[y as usize * wu + x as usize] { 255 } else { 0 }]));
    let mut out = img.clone();
    for (x, y, p) in out.enumerate_pixels_mut() {
        let mut sum = 0u32;
        let mut n = 0u32;
        for dy in -1i64..=1 {
            for dx in -1i64..=1 {
                let (nx, ny) = (i64::from(x) + dx, i64::from(y) + dy);
                if nx >= 0 && ny >= 0 && nx < i64::from(w) && ny < i64::from(h) {
                    sum += u32::from(mask.get_pixel(nx as u32, ny as u32)[0]);
                    n += 1;
                }
            }
        }
        let alpha = (sum / n.max(1)) as u8;
        p[3] = ((u32::from(p[3]) * u32::from(alpha)) / 255) as u8;
    }
    progress(95, "cut out");
    (out, mask)
}

/// Lloyd's k-means seeded by farthest points (deterministic).
fn kmeans(points: &[[f32; 3]], k: usize, rounds: usize) -> Vec<[f32; 3]> {
    if points.is_empty() {
        return vec![[255.0; 3]];
    }
    let d2 = |a: &[f32; 3], b: &[f32; 3]| (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2);
    let mut centres = vec![points[0]];
    while centres.len() < k {
        let (far, dist) = points
            .iter()
            .map(|p| (p, centres.iter().map(|c| d2(p, c)).fold(f32::MAX, f32::min)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("non-empty");
        if dist < 100.0 {
            break; // the rest is within 10 levels of a centre: fewer clusters suffice
        }
        centres.push(*far);
    }
    for _ in 0..rounds {
        let mut sums = vec![[0f32; 4]; centres.len()];
        for p in points {
            let (best, _) = centres
                .iter()
                .enumerate()
                .map(|(i, c)| (i, d2(p, c)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("non-empty");
            for c in 0..3 {
                sums[best][c] += p[c];
            }
            sums[best][3] += 1.0;
        }
        for (c, s) in centres.iter_mut().zip(&sums) {
            if s[3] > 0.0 {
                *c = [s[0] / s[3], s[1] / s[3], s[2] / s[3]];
            }
        }
    }
    centres
}

/// Binary erosion with a square of `r` (separable: rows, then columns).
fn erode(m: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    morph(m, w, h, r, true)
}

fn dilate(m: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    morph(m, w, h, r, false)
}

fn morph(m: &[bool], w: usize, h: usize, r: usize, erode: bool) -> Vec<bool> {
    let pass = |src: &[bool], horizontal: bool| -> Vec<bool> {
        let mut out = vec![false; w * h];
        for y in 0..h {
            for x in 0..w {
                let (pos, len) = if horizontal { (x, w) } else { (y, h) };
                let lo = pos.saturating_sub(r);
                let hi = (pos + r).min(len - 1);
                let at = |p: usize| if horizontal { src[y * w + p] } else { src[p * w + x] };
                out[y * w + x] = if erode { (lo..=hi).all(at) } else { (lo..=hi).any(at) };
            }
        }
        out
    };
    pass(&pass(m, true), false)
}

/// Labels 4-connected components; keeps those of at least `min_share` of the largest.
fn keep_large_components(m: &[bool], w: usize, h: usize, min_share: f32) -> Vec<bool> {
    let mut label = vec![0u32; w * h];
    let mut sizes = vec![0usize];
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !m[start] || label[start] != 0 {
            continue;
        }
        let id = sizes.len() as u32;
        sizes.push(0);
        label[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            sizes[id as usize] += 1;
            let (x, y) = (i % w, i / w);
            for (ok, j) in
                [(x > 0, i.wrapping_sub(1)), (x + 1 < w, i + 1), (y > 0, i.wrapping_sub(w)), (y + 1 < h, i + w)]
            {
                if ok && m[j] && label[j] == 0 {
                    label[j] = id;
                    stack.push(j);
                }
            }
        }
    }
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let min = (largest as f32 * min_share).ceil() as usize;
    label.iter().map(|&l| l != 0 && sizes[l as usize] >= min.max(1)).collect()
}

/// Sets background regions not connected to the image border to foreground.
fn fill_holes(m: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut outside = vec![false; w * h];
    let mut stack: Vec<usize> = (0..w * h)
        .filter(|&i| {
            let (x, y) = (i % w, i / w);
            (x == 0 || y == 0 || x == w - 1 || y == h - 1) && !m[i]
        })
        .collect();
    for &i in &stack {
        outside[i] = true;
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        for (ok, j) in [(x > 0, i.wrapping_sub(1)), (x + 1 < w, i + 1), (y > 0, i.wrapping_sub(w)), (y + 1 < h, i + w)]
        {
            if ok && !m[j] && !outside[j] {
                outside[j] = true;
                stack.push(j);
            }
        }
    }
    outside.iter().map(|o| !o).collect()
}

/// The largest side of the relief mesh's grid (vertices per side at most this + 1).
pub const RELIEF_GRID: u32 = 160;

/// A relief mesh as binary glTF 2.0: a grid over the image (longer side [`RELIEF_GRID`]
/// cells), height from luminance scaled by alpha, triangles only where the image is
/// visible, normals from the height field, the image (PNG) as the base colour texture.
/// Returns the GLB bytes and the vertex and triangle counts.
pub fn relief_glb(img: &RgbaImage, depth: f32, progress: Progress<'_>) -> Result<(Vec<u8>, usize, usize), String> {
    let (w, h) = img.dimensions();
    let scale = RELIEF_GRID as f32 / w.max(h) as f32;
    let gw = ((w as f32 * scale).round() as u32).max(1);
    let gh = ((h as f32 * scale).round() as u32).max(1);
    let grid = imageops::resize(img, gw + 1, gh + 1, imageops::FilterType::Triangle);
    let (vw, vh) = (gw + 1, gh + 1);
    let aspect = h as f32 / w as f32;
    let (sx, sy) = if aspect <= 1.0 { (1.0, aspect) } else { (1.0 / aspect, 1.0) };
    let height = |x: u32, y: u32| {
        let p = grid.get_pixel(x, y);
        (luma(p) / 255.0) * (f32::from(p[3]) / 255.0) * depth
    };
    let mut positions: Vec<f32> = Vec::with_capacity((vw * vh * 3) as usize);
    let mut uvs: Vec<f32> = Vec::with_capacity((vw * vh * 2) as usize);
    for y in 0..vh {
        for x in 0..vw {
            let (u, v) = (x as f32 / gw as f32, y as f32 / gh as f32);
            positions.extend_from_slice(&[(u - 0.5) * sx, (0.5 - v) * sy, height(x, y)]);
            uvs.extend_from_slice(&[u, v]);
        }
    }
    progress(30, "built the height field");
    let mut normals = vec![0f32; positions.len()];
    let step_x = sx / gw as f32;
    let step_y = sy / gh as f32;
    for y in 0..vh {
        for x in 0..vw {
            let hl = height(x.saturating_sub(1), y);
            let hr = height((x + 1).min(vw - 1), y);
            let hu = height(x, y.saturating_sub(1));
            let hd = height(x, (y + 1).min(vh - 1));
            // Surface z = f(x, y): normal ∝ (−∂f/∂x, −∂f/∂y, 1); image y runs down.
            let nx = -(hr - hl) / (2.0 * step_x);
            let ny = (hd - hu) / (2.0 * step_y);
            let len = (nx * nx + ny * ny + 1.0).sqrt();
            let i = ((y * vw + x) * 3) as usize;
            normals[i..i + 3].copy_from_slice(&[nx / len, ny / len, 1.0 / len]);
        }
    }
    let mut indices: Vec<u32> = Vec::new();
    for y in 0..gh {
        for x in 0..gw {
            let corners = [(x, y), (x + 1, y), (x, y + 1), (x + 1, y + 1)];
            if corners.iter().all(|&(cx, cy)| grid.get_pixel(cx, cy)[3] < 16) {
                continue;
            }
            let i = y * vw + x;
            indices.extend_from_slice(&[i, i + vw, i + 1, i + 1, i + vw, i + vw + 1]);
        }
    }
    if indices.is_empty() {
        return Err("the image is fully transparent: nothing to build".into());
    }
    progress(60, "triangulated");
    let mut texture = Vec::new();
    let thumb = if w.max(h) > 1024 {
        imageops::resize(
            img,
            (w as f32 * 1024.0 / w.max(h) as f32) as u32,
            (h as f32 * 1024.0 / w.max(h) as f32) as u32,
            imageops::FilterType::Triangle,
        )
    } else {
        img.clone()
    };
    thumb
        .write_to(&mut std::io::Cursor::new(&mut texture), image::ImageFormat::Png)
        .map_err(|e| format!("encoding the texture failed: {e}"))?;
    progress(85, "encoded the texture");
    let glb = write_glb(&positions, &normals, &uvs, &indices, &texture, depth);
    Ok((glb, (vw * vh) as usize, indices.len() / 3))
}

fn write_glb(positions: &[f32], normals: &[f32], uvs: &[f32], indices: &[u32], png: &[u8], depth: f32) -> Vec<u8> {
    fn push_aligned(bin: &mut Vec<u8>, data: &[u8]) -> (usize, usize) {
        while !bin.len().is_multiple_of(4) {
            bin.push(0);
        }
        let offset = bin.len();
        bin.extend_from_slice(data);
        (offset, data.len())
    }
    let f32s = |v: &[f32]| v.iter().flat_map(|f| f.to_le_bytes()).collect::<Vec<u8>>();
    let mut bin = Vec::new();
    let pos = push_aligned(&mut bin, &f32s(positions));
    let nor = push_aligned(&mut bin, &f32s(normals));
    let uv = push_aligned(&mut bin, &f32s(uvs));
    let idx = push_aligned(&mut bin, &indices.iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>());
    let tex = push_aligned(&mut bin, png);
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }
    let count = positions.len() / 3;
    let (mut min, mut max) = ([f32::MAX; 3], [f32::MIN; 3]);
    for p in positions.chunks_exact(3) {
        for c in 0..3 {
            min[c] = min[c].min(p[c]);
            max[c] = max[c].max(p[c]);
        }
    }
    let json = serde_json::json!({
        "asset": { "version": "2.0", "generator": "funmagic local-relief" },
        "scene": 0,
        "scenes": [{ "nodes": [0] }],
        "nodes": [{ "mesh": 0, "name": "relief" }],
        "meshes": [{ "name": "relief", "primitives": [{
            "attributes": { "POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2 },
            "indices": 3, "material": 0, "mode": 4
        }]}],
        "materials": [{
            "name": "image",
            "pbrMetallicRoughness": { "baseColorTexture": { "index": 0 }, "metallicFactor": 0.0, "roughnessFactor": 0.9 },
            "alphaMode": "MASK", "alphaCutoff": 0.1, "doubleSided": true
        }],
        "textures": [{ "source": 0, "sampler": 0 }],
        "samplers": [{ "magFilter": 9729, "minFilter": 9729, "wrapS": 33071, "wrapT": 33071 }],
        "images": [{ "bufferView": 4, "mimeType": "image/png" }],
        "buffers": [{ "byteLength": bin.len() }],
        "bufferViews": [
            { "buffer": 0, "byteOffset": pos.0, "byteLength": pos.1, "target": 34962 },
            { "buffer": 0, "byteOffset": nor.0, "byteLength": nor.1, "target": 34962 },
            { "buffer": 0, "byteOffset": uv.0, "byteLength": uv.1, "target": 34962 },
            { "buffer": 0, "byteOffset": idx.0, "byteLength": idx.1, "target": 34963 },
            { "buffer": 0, "byteOffset": tex.0, "byteLength": tex.1 }
        ],
        "accessors": [
            { "bufferView": 0, "componentType": 5126, "count": count, "type": "VEC3", "min": min, "max": max },
            { "bufferView": 1, "componentType": 5126, "count": count, "type": "VEC3" },
            { "bufferView": 2, "componentType": 5126, "count": count, "type": "VEC2" },
            { "bufferView": 3, "componentType": 5125, "count": indices.len(), "type": "SCALAR" }
        ],
        "extras": { "depth": depth }
    });
    let mut json = serde_json::to_vec(&json).expect("serializable");
    while !json.len().is_multiple_of(4) {
        json.push(b' ');
    }
    let total = 12 + 8 + json.len() + 8 + bin.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(&json);
    out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    out.extend_from_slice(b"BIN\0");
    out.extend_from_slice(&bin);
    out
}

/// The sampling step of [`point_cloud_ply`]: every `step`-th pixel in both directions, so
/// that at most `max_points` pixels are visited.
pub fn point_step(w: u32, h: u32, max_points: u32) -> u32 {
    let pixels = f64::from(w) * f64::from(h);
    ((pixels / f64::from(max_points.max(1))).sqrt().ceil() as u32).max(1)
}

/// A coloured point cloud as binary little-endian PLY: one point per sampled pixel (see
/// [`point_step`]) whose alpha is at least 128, at (x, y) in the image plane (the longer
/// side is 1 long) and z from luminance × `depth`, with the pixel's colour. Returns the
/// bytes and the point count.
pub fn point_cloud_ply(img: &RgbaImage, depth: f32, max_points: u32, progress: Progress<'_>) -> (Vec<u8>, usize) {
    let (w, h) = img.dimensions();
    let step = point_step(w, h, max_points);
    let longer = w.max(h) as f32;
    let mut body: Vec<u8> = Vec::new();
    let mut count = 0usize;
    let rows = h.div_ceil(step);
    for (row, y) in (0..h).step_by(step as usize).enumerate() {
        for x in (0..w).step_by(step as usize) {
            let p = img.get_pixel(x, y);
            if p[3] < 128 {
                continue;
            }
            let px = (x as f32 - w as f32 / 2.0) / longer;
            let py = (h as f32 / 2.0 - y as f32) / longer;
            let pz = luma(p) / 255.0 * depth;
            for v in [px, py, pz] {
                body.extend_from_slice(&v.to_le_bytes());
            }
            body.extend_from_slice(&[p[0], p[1], p[2]]);
            count += 1;
        }
        if row % 64 == 0 {
            progress((10 + row * 80 / rows.max(1) as usize) as u8, "sampling points");
        }
    }
    let header = format!(
        "ply\nformat binary_little_endian 1.0\ncomment funmagic local-pointcloud\nelement vertex {count}\n\
         property float x\nproperty float y\nproperty float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    );
    let mut out = header.into_bytes();
    out.extend_from_slice(&body);
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::sample_scene as scene;

    fn iou(a: &[bool], b: &[bool]) -> f64 {
        let inter = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
        let union = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
        inter as f64 / union.max(1) as f64
    }

    #[test]
    fn background_removal_finds_the_object() {
        for (w, h) in [(240, 180), (160, 200)] {
            let (img, truth) = scene(w, h);
            let mut steps = vec![];
            let (out, mask) = remove_background(&img, &mut |p, _| steps.push(p));
            let found: Vec<bool> = mask.pixels().map(|p| p[0] > 127).collect();
            let score = iou(&found, &truth);
            assert!(score >= 0.9, "{w}×{h}: IoU {score:.3}");
            assert!(steps.windows(2).all(|s| s[0] < s[1]), "progress rises: {steps:?}");
            // The background is transparent, the object opaque, colours kept.
            assert_eq!(out.get_pixel(2, 2)[3], 0);
            let c = out.get_pixel((w as f32 * 0.4) as u32, (h as f32 * 0.45) as u32);
            assert_eq!(c[3], 255);
            assert!(c[0] > 150 && c[1] < 90, "{c:?}");
        }
    }

    #[test]
    fn background_removal_of_a_plain_image_keeps_nothing_or_everything_cleanly() {
        let img = RgbaImage::from_pixel(64, 64, Rgba([240, 240, 240, 255]));
        let (out, _) = remove_background(&img, &mut |_, _| {});
        assert!(out.pixels().all(|p| p[3] == 0), "a plain image is all background");
    }

    #[test]
    fn styles_change_the_image_and_keep_its_size() {
        let (img, _) = scene(96, 64);
        for style in STYLES {
            let out = stylize(&img, style, &mut |_, _| {});
            assert_eq!(out.dimensions(), img.dimensions());
            let changed = out.pixels().zip(img.pixels()).filter(|(a, b)| a != b).count();
            assert!(changed > 96 * 64 / 4, "{style} changed only {changed} pixels");
        }
        let posterized = stylize(&img, "posterize", &mut |_, _| {});
        assert!(posterized.pixels().all(|p| [0u8, 85, 170, 255].contains(&p[0])));
        let duo = stylize(&img, "duotone", &mut |_, _| {});
        assert!(duo.pixels().all(|p| (96..=120).contains(&p[2])), "blue channel between the tones");
        assert_eq!(style_for("noir", "Pencil sketch", "a sketch of it"), "sketch");
        assert_eq!(style_for("pixel-art", "", ""), "pixel-art");
        assert_eq!(style_for("x", "Retro", "in pixel art style"), "pixel-art");
        assert_eq!(style_for("x", "y", "z"), "posterize");
        let a = canvas_from_prompt("a cat", 64);
        assert_eq!(a, canvas_from_prompt("a cat", 64), "deterministic");
        assert_ne!(a, canvas_from_prompt("a dog", 64));
    }

    #[test]
    fn relief_is_valid_gltf() {
        let (img, _) = scene(200, 120);
        let (cut, _) = remove_background(&img, &mut |_, _| {});
        let (glb, vertices, triangles) = relief_glb(&cut, 0.2, &mut |_, _| {}).unwrap();
        let gltf = gltf::Gltf::from_slice(&glb).expect("the GLB parses and validates");
        let mesh = gltf.meshes().next().unwrap();
        let prim = mesh.primitives().next().unwrap();
        let pos = prim.get(&gltf::Semantic::Positions).unwrap();
        assert_eq!(pos.count(), vertices);
        assert_eq!(vertices, 161 * 97, "grid of {RELIEF_GRID} cells on the longer side");
        assert!(prim.get(&gltf::Semantic::Normals).is_some() && prim.get(&gltf::Semantic::TexCoords(0)).is_some());
        assert_eq!(prim.indices().unwrap().count(), triangles * 3);
        // Only the visible part is triangulated: fewer than the full grid's 2 per cell.
        assert!(triangles > 1000 && triangles < 160 * 96 * 2, "{triangles}");
        let tex = gltf.textures().next().unwrap();
        assert!(matches!(tex.source().source(), gltf::image::Source::View { mime_type: "image/png", .. }));
        // Transparent everywhere: an error, not an empty model.
        let clear = RgbaImage::from_pixel(10, 10, Rgba([0, 0, 0, 0]));
        assert!(relief_glb(&clear, 0.2, &mut |_, _| {}).is_err());
    }

    #[test]
    fn point_cloud_has_the_right_point_count() {
        let (img, truth) = scene(120, 90);
        let (ply, count) = point_cloud_ply(&img, 0.3, 1_000_000, &mut |_, _| {});
        assert_eq!(count, 120 * 90, "every opaque pixel at step 1");
        let header_end = ply.windows(11).position(|w| w == b"end_header\n").unwrap() + 11;
        let header = std::str::from_utf8(&ply[..header_end]).unwrap();
        assert!(header.contains("element vertex 10800\n"), "{header}");
        assert_eq!(ply.len() - header_end, count * 15, "3 floats + 3 bytes per point");
        // With a cut-out: only the object's pixels; with a budget: a coarser step.
        let (cut, mask) = remove_background(&img, &mut |_, _| {});
        let (_, object_points) = point_cloud_ply(&cut, 0.3, 1_000_000, &mut |_, _| {});
        let opaque = cut.pixels().filter(|p| p[3] >= 128).count();
        assert_eq!(object_points, opaque);
        assert!(mask.pixels().filter(|p| p[0] > 0).count() > truth.iter().filter(|t| **t).count() / 2);
        let (_, few) = point_cloud_ply(&img, 0.3, 1000, &mut |_, _| {});
        let step = point_step(120, 90, 1000);
        assert_eq!(step, 4);
        assert_eq!(few, 120usize.div_ceil(4) * 90usize.div_ceil(4));
    }
}
