//! Reads enum values and struct member offsets from the running kernel's BTF.

use btf_rs::{Btf, BtfType, Type};

use crate::error::Error;

pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

pub struct KernelBtf(Btf);

impl KernelBtf {
    pub fn load(path: &std::path::Path) -> Result<Self, Error> {
        Btf::from_file(path).map(Self).map_err(|e| Error::NoBtf { path: path.to_path_buf(), detail: format!("{e:#}") })
    }

    /// (name, value) of every enumerator of `enum <name>`, or None when absent.
    #[must_use]
    pub fn enum_values(&self, name: &str) -> Option<Vec<(String, u64)>> {
        self.0.resolve_types_by_name(name).ok()?.into_iter().find_map(|t| match t {
            Type::Enum(e) => Some(
                e.members.iter().filter_map(|m| Some((self.0.resolve_name(m).ok()?, u64::from(m.val())))).collect(),
            ),
            Type::Enum64(e) => {
                Some(e.members.iter().filter_map(|m| Some((self.0.resolve_name(m).ok()?, m.val()))).collect())
            }
            _ => None,
        })
    }

    /// Number of parameters of kernel function `name`, or None when BTF has no such function.
    #[must_use]
    pub fn func_params(&self, name: &str) -> Option<usize> {
        self.0.resolve_types_by_name(name).ok()?.into_iter().find_map(|t| match t {
            Type::Func(f) => match self.0.resolve_chained_type(&f).ok()? {
                Type::FuncProto(p) => Some(p.parameters.len()),
                _ => None,
            },
            _ => None,
        })
    }

    /// Byte offset of `path` (e.g. `["__sk_common", "skc_state"]`) inside
    /// `struct <strukt>`, looking through anonymous structs and unions.
    #[must_use]
    pub fn member_offset(&self, strukt: &str, path: &[&str]) -> Option<u32> {
        let root = self.0.resolve_types_by_name(strukt).ok()?.into_iter().find_map(|t| match t {
            Type::Struct(s) if !s.members.is_empty() => Some(s),
            _ => None,
        })?;
        let mut ty = root;
        let mut bits = 0u32;
        for (i, name) in path.iter().enumerate() {
            let (off, member_ty) = self.find_member(&ty, name)?;
            bits += off;
            if i + 1 < path.len() {
                ty = self.as_struct(member_ty)?;
            }
        }
        bits.is_multiple_of(8).then_some(bits / 8)
    }

    /// (bit offset, type) of a named member, descending into anonymous members.
    fn find_member(&self, s: &btf_rs::Struct, name: &str) -> Option<(u32, Type)> {
        for m in &s.members {
            let mname = self.0.resolve_name(m).unwrap_or_default();
            let mty = self.0.resolve_chained_type(m).ok()?;
            if mname == name {
                return Some((m.bit_offset(), mty));
            }
            if mname.is_empty()
                && let Some(inner) = self.as_struct(mty)
                && let Some((off, t)) = self.find_member(&inner, name)
            {
                return Some((m.bit_offset() + off, t));
            }
        }
        None
    }

    /// Follows typedefs and qualifiers to a struct or union.
    fn as_struct(&self, mut ty: Type) -> Option<btf_rs::Struct> {
        for _ in 0..8 {
            match ty {
                Type::Struct(s) | Type::Union(s) => return Some(s),
                Type::Typedef(_) | Type::Const(_) | Type::Volatile(_) | Type::TypeTag(_) | Type::Restrict(_) => {
                    let next = ty.as_btf_type().and_then(|t| self.0.resolve_chained_type(t).ok())?;
                    ty = next;
                }
                _ => return None,
            }
        }
        None
    }
}

/// Keeps `BtfType` in scope for `resolve_name` on members.
const _: fn(&dyn BtfType) = |_| {};
